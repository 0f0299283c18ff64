"""The BERT family (BERT, MiniLM) → :class:`qkv.EncoderModel`.

What BERT is, in qkv's terms: learned absolute positions, token-type (segment) embeddings and a
LayerNorm on the embedding sum (``type_vocab_size``, ``embedding_norm``), no √d_model scaling,
post-norm layers with GELU and LayerNorm epsilon 1e-12. The pooler and the pre-training heads
(``pooler.*``, ``cls.*``) are not part of an encoder's hidden states and are not loaded.

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
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from qkv.models.config import EncoderModelConfig
from qkv.models.encoder_model import EncoderModel
from qkv.pretrained.loader import Checkpoint, assign_weights, require_files
from qkv.pretrained.tokenizers import HuggingFaceTokenizer

__all__ = ["config_from_hf", "convert", "load_tokenizer", "bert_inputs"]

# BertConfig's defaults, for config.json files that leave a field out.
_DEFAULTS = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
                 attention_probs_dropout_prob=0.1, max_position_embeddings=512,
                 type_vocab_size=2, layer_norm_eps=1e-12, pad_token_id=0,
                 position_embedding_type="absolute")
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


def convert(hf_config: dict, checkpoint: Checkpoint) -> EncoderModel:
    """A :class:`qkv.EncoderModel` with the checkpoint's weights (names in the module docstring)."""
    config = config_from_hf(hf_config)
    checkpoint.strip_prefix("bert.")
    # Old checkpoints call the LayerNorm parameters gamma and beta.
    checkpoint.tensors = {name.replace("LayerNorm.gamma", "LayerNorm.weight")
                          .replace("LayerNorm.beta", "LayerNorm.bias"): tensor
                          for name, tensor in checkpoint.tensors.items()}
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
    checkpoint.check_all_used("BERT", ignore=("embeddings.position_ids", "pooler.", "cls."))
    model = EncoderModel(config)
    assign_weights(model, weights, checkpoint.folder)
    return model


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


def _read_json(file: Path) -> dict:
    return json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}
