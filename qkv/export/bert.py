""":class:`qkv.EncoderModel` → ``BertModel``, :class:`qkv.SequenceClassifier` →
``BertForSequenceClassification``: the inverse of :mod:`qkv.pretrained.bert`.

BERT, in qkv's terms, is a post-norm encoder with absolute positions and a LayerNorm on the
embedding sum (``embedding_norm``). Some qkv choices that look different are the same function
written another way, and are exported as such:

* **positions** ``"sinusoidal"``: the fixed table becomes BERT's position embeddings (BERT adds
  one vector per position, learned or not); ``"learned"`` is copied as it is;
* **scale_embeddings**: the √d_model factor is multiplied into the word embeddings (BERT has no
  output layer that shares them);
* **type_vocab_size** ``0``: one token type whose vector is zero (BERT adds type 0's vector);
* **bias** ``False``: zero biases.

What BERT cannot express is refused with a ValueError naming the field: ``positions="rotary"``,
``norm_first=True`` (pre-norm), ``embedding_norm=False``, and for a classifier
``pooling="mean"`` or ``pooler=False`` (``BertForSequenceClassification`` reads the first
token through its dense + tanh pooler).

Weight names, qkv → Hugging Face (``i`` = layer; inside a classifier qkv's names start with
``encoder.`` and Hugging Face's with ``bert.``)::

    embedding.token · scale                      embeddings.word_embeddings
    embedding.positions (table or embedding)     embeddings.position_embeddings
    embedding.token_type (or one zero row)       embeddings.token_type_embeddings
    embedding.norm                               embeddings.LayerNorm
    layers.i.self_attention.query_proj           encoder.layer.i.attention.self.query  (key, value)
    layers.i.self_attention.output_proj          encoder.layer.i.attention.output.dense
    layers.i.self_attention_residual.norm        encoder.layer.i.attention.output.LayerNorm
    layers.i.feed_forward.inner                  encoder.layer.i.intermediate.dense
    layers.i.feed_forward.outer                  encoder.layer.i.output.dense
    layers.i.feed_forward_residual.norm          encoder.layer.i.output.LayerNorm
    pooler                                       bert.pooler.dense          (classifier only)
    classifier                                   classifier                 (classifier only)

A ``BertModel`` also has a pooler, which an :class:`~qkv.EncoderModel` lacks: transformers
initialises it afresh (and says so) — use ``last_hidden_state``, which equals qkv's output.
"""

from __future__ import annotations

from torch import Tensor

from qkv.export._common import HF_ACTIVATIONS, position_table, refusal, weight_and_bias
from qkv.models.classifier import SequenceClassifier
from qkv.models.encoder_model import EncoderModel

__all__ = ["config_to_hf", "weights_to_hf"]

_FAMILY = "BERT"
_SUBLAYERS = {  # qkv's name inside layers.i → Hugging Face's inside encoder.layer.i
    "self_attention.query_proj": "attention.self.query",
    "self_attention.key_proj": "attention.self.key",
    "self_attention.value_proj": "attention.self.value",
    "self_attention.output_proj": "attention.output.dense",
    "self_attention_residual.norm": "attention.output.LayerNorm",
    "feed_forward.inner": "intermediate.dense",
    "feed_forward.outer": "output.dense",
    "feed_forward_residual.norm": "output.LayerNorm",
}


def config_to_hf(model: EncoderModel | SequenceClassifier,
                 special_ids: dict[str, int | None] | None = None) -> dict:
    """The ``config.json`` of ``model`` as a ``BertModel`` or ``BertForSequenceClassification``.

    Args:
        model: the encoder or classifier.
        special_ids: the tokenizer's; its ``pad`` is recorded where the config has no
            ``pad_id``.

    Raises:
        ValueError: a field BERT cannot express (see the module docstring).

    Example:
        >>> import qkv
        >>> model = qkv.EncoderModel(qkv.EncoderModelConfig(vocab_size=50, d_model=32,
        ...     num_heads=4, num_layers=2, d_ff=64, activation="gelu", embedding_norm=True))
        >>> hf = config_to_hf(model)
        >>> hf["architectures"], hf["hidden_size"], hf["hidden_act"], hf["type_vocab_size"]
        (['BertModel'], 32, 'gelu', 1)
        >>> config_to_hf(qkv.EncoderModel(qkv.EncoderModelConfig(vocab_size=50, d_model=32,
        ...     num_heads=4, num_layers=1, d_ff=64, norm_first=True)))
        Traceback (most recent call last):
        ...
        ValueError: cannot export to BERT: norm_first=True; BERT's layers are post-norm ...
    """
    encoder = _encoder(model)
    config = encoder.config
    if config.norm_first:
        raise refusal(_FAMILY, "norm_first", True, "BERT's layers are post-norm "
                      "(LayerNorm(x + sublayer(x))) and it has no final LayerNorm")
    if not config.embedding_norm:
        raise refusal(_FAMILY, "embedding_norm", False, "BERT always normalises the embedding "
                      "sum with a LayerNorm")
    position_table(encoder.embedding.positions, _FAMILY)               # refuses rotary
    special = special_ids or {}
    hf = {
        "model_type": "bert", "architectures": ["BertModel"],
        "vocab_size": config.vocab_size, "hidden_size": config.d_model,
        "num_hidden_layers": config.num_layers, "num_attention_heads": config.num_heads,
        "intermediate_size": config.d_ff, "hidden_act": HF_ACTIVATIONS[config.activation],
        "hidden_dropout_prob": config.dropout,
        "attention_probs_dropout_prob": config.attention_dropout,
        "max_position_embeddings": config.max_len,
        "type_vocab_size": max(config.type_vocab_size, 1),
        "layer_norm_eps": config.norm_eps, "position_embedding_type": "absolute",
        "pad_token_id": config.pad_id if config.pad_id is not None else special.get("pad"),
    }
    if isinstance(model, SequenceClassifier):
        hf.update(_classifier_fields(model))
    return hf


def weights_to_hf(model: EncoderModel | SequenceClassifier) -> dict[str, Tensor]:
    """The tensors of ``model`` under BERT's names (table in the module docstring); call
    :func:`config_to_hf` first, which refuses what BERT cannot express."""
    encoder = _encoder(model)
    embedding = encoder.embedding
    token_type = (embedding.token_type.weight if embedding.token_type is not None
                  else embedding.token.weight.new_zeros(1, encoder.config.d_model))
    weights = {
        "embeddings.word_embeddings.weight": embedding.token.weight * embedding.scale,
        "embeddings.position_embeddings.weight": position_table(embedding.positions, _FAMILY),
        "embeddings.token_type_embeddings.weight": token_type,
        "embeddings.LayerNorm.weight": embedding.norm.weight,
        "embeddings.LayerNorm.bias": embedding.norm.bias,
    }
    for i, layer in enumerate(encoder.layers):
        for ours, theirs in _SUBLAYERS.items():
            weight, bias = weight_and_bias(layer.get_submodule(ours))
            weights[f"encoder.layer.{i}.{theirs}.weight"] = weight
            weights[f"encoder.layer.{i}.{theirs}.bias"] = bias
    if isinstance(model, SequenceClassifier):
        weights = {f"bert.{name}": tensor for name, tensor in weights.items()}
        for ours, theirs in ((model.pooler, "bert.pooler.dense"), (model.classifier, "classifier")):
            weights[f"{theirs}.weight"], weights[f"{theirs}.bias"] = ours.weight, ours.bias
    return weights


def _encoder(model: EncoderModel | SequenceClassifier) -> EncoderModel:
    if isinstance(model, SequenceClassifier):
        return model.encoder
    if isinstance(model, EncoderModel):
        return model
    raise TypeError(f"BERT export takes an EncoderModel or a SequenceClassifier, got "
                    f"{type(model).__name__}")


def _classifier_fields(model: SequenceClassifier) -> dict:
    """``BertForSequenceClassification``'s fields: the head reads ``[CLS]`` through the pooler."""
    config = model.config
    if config.pooling != "cls":
        raise refusal(_FAMILY, "pooling", config.pooling, "BertForSequenceClassification "
                      "classifies the first token's hidden state ('cls' pooling); a mean over "
                      "the tokens has no place in it")
    if not config.pooler:
        raise refusal(_FAMILY, "pooler", False, "BertForSequenceClassification always passes "
                      "the first token through its pooler (dense + tanh) before the head")
    return {"architectures": ["BertForSequenceClassification"],
            "problem_type": "single_label_classification",
            "classifier_dropout": config.classifier_dropout,
            "id2label": {str(i): label for i, label in enumerate(config.labels)},
            "label2id": {label: i for i, label in enumerate(config.labels)}}
