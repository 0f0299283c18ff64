""":class:`qkv.Transformer` → ``MarianMTModel``: the inverse of :mod:`qkv.pretrained.marian`.

Marian is the paper's encoder–decoder: post-norm layers (LayerNorm epsilon 1e-5), fixed
sinusoidal positions, ``√d_model``-scaled embeddings if ``scale_embedding``, any activation,
source/target/output embeddings shared or not, and a ``final_logits_bias``. How each qkv choice
maps, checked field by field:

* **Positions.** Marian's sinusoids are not stored in its weights: ``transformers`` recomputes
  them, laid out ``[sin | cos]`` (halves), where the paper and qkv interleave
  ``[sin, cos, sin, cos…]``. The two tables hold the same columns in another order, and a
  Transformer is unchanged by any fixed reordering of its model dimension ``E`` — a change of
  basis of the residual stream that every LayerNorm (mean and variance ignore the order),
  projection and the tied output layer follow. So a model with ``positions="sinusoidal"`` is
  exported with every ``E`` axis of its weights reordered by :func:`sinusoid_order`
  (``0, 2, 4… 1, 3, 5…``) — the function it computes, its attention heads and their weights
  are unchanged. Reordering changes the order of float sums (LayerNorm statistics, matrix
  products), so the logits agree to float32 rounding (about 1e-6), not bit for bit. A model
  with ``positions="learned"`` is exported only if its vectors are Marian's sinusoids (as for a
  model loaded from a Marian folder, which needs no reordering), in either layout.
* **Scale** ``scale_embeddings`` → ``scale_embedding``; **activation** → its ``transformers``
  name; **bias** ``False`` → zero biases; **output bias**: qkv's has none → zeros, a model
  loaded from Marian keeps its ``final_logits_bias``.
* **Embeddings** ``share_embeddings`` → ``share_encoder_decoder_embeddings`` (one ``shared``
  matrix, else ``encoder.embed_tokens`` and ``decoder.embed_tokens`` with ``decoder_vocab_size``);
  ``tie_output`` → ``tie_word_embeddings`` (else an ``lm_head`` of its own).
* **Special ids**: ``pad_token_id`` (the config's ``pad_id``, else the tokenizer's),
  ``eos_token_id`` and ``decoder_start_token_id`` (the target tokenizer's ``bos``: qkv starts
  decoding with ``<bos>``, Opus-MT models with their pad token). In ``transformers`` a padded
  batch needs ``attention_mask`` and ``decoder_attention_mask`` (``ids != pad_id``), which
  qkv derives from the ids itself.

Refused, with a ValueError naming the field: ``norm_first=True`` (Marian is post-norm, with no
final LayerNorm), ``norm_eps`` other than 1e-5, ``positions="rotary"``, and learned positions
that are not Marian's sinusoids (Marian has no place for trained position vectors).

Weight names, qkv → Hugging Face (``i`` = layer; all but ``lm_head`` and ``final_logits_bias``
under ``model.``; the ``E`` axes reordered as above)::

    src_embedding.token (= tgt_embedding.token)   shared (and, untied, copies in *.embed_tokens)
    src_embedding.token, tgt_embedding.token      encoder.embed_tokens, decoder.embed_tokens
    output_layer            lm_head (only when not tied); its bias (or zeros) final_logits_bias
    encoder.layers.i.self_attention.query_proj    encoder.layers.i.self_attn.q_proj  (k, v, out)
    encoder.layers.i.self_attention_residual.norm encoder.layers.i.self_attn_layer_norm
    encoder.layers.i.feed_forward.inner, outer    encoder.layers.i.fc1, fc2
    encoder.layers.i.feed_forward_residual.norm   encoder.layers.i.final_layer_norm
    decoder.layers.i.…                            decoder.layers.i.… (the same names), and
    decoder.layers.i.cross_attention              decoder.layers.i.encoder_attn
    decoder.layers.i.cross_attention_residual.norm   decoder.layers.i.encoder_attn_layer_norm
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from qkv.export._common import HF_ACTIVATIONS, position_table, refusal, weight_and_bias
from qkv.models.transformer import Transformer
from qkv.pretrained.marian import marian_positions_table

__all__ = ["config_to_hf", "weights_to_hf", "sinusoid_order"]

_FAMILY = "Marian"
_MARIAN_EPS = 1e-5
_TOLERANCE = 1e-6      # between two computations of the same sinusoids (float32 rounding)
_ATTENTION = {"query_proj": "q_proj", "key_proj": "k_proj", "value_proj": "v_proj"}


def sinusoid_order(d_model: int) -> Tensor:
    """The reordering of the model dimension that turns interleaved sinusoids into Marian's
    halves: Marian's column ``j`` is qkv's column ``order[j]``.

    Example:
        >>> from qkv.models.positions import sinusoidal_table
        >>> sinusoid_order(6).tolist()
        [0, 2, 4, 1, 3, 5]
        >>> bool(torch.equal(sinusoidal_table(8, 6)[:, sinusoid_order(6)],
        ...                  marian_positions_table(8, 6)))
        True
    """
    return torch.cat([torch.arange(0, d_model, 2), torch.arange(1, d_model, 2)])


def config_to_hf(model: Transformer, special_ids: dict[str, int | None] | None = None) -> dict:
    """The ``config.json`` of ``model`` as a ``MarianMTModel``.

    Args:
        model: the encoder–decoder.
        special_ids: ``pad``, ``bos`` and ``eos`` ids of the target tokenizer (the config's own
            ``pad_id`` comes first); ``bos`` is required (``decoder_start_token_id``).

    Raises:
        ValueError: a field Marian cannot express (see the module docstring).

    Example:
        >>> import qkv
        >>> model = qkv.Transformer(qkv.TransformerConfig.base(vocab_size=100, d_model=32,
        ...     num_heads=4, num_layers=2, d_ff=64))                    # the paper's model
        >>> hf = config_to_hf(model, {"pad": 0, "bos": 1, "eos": 2})
        >>> hf["scale_embedding"], hf["activation_function"], hf["share_encoder_decoder_embeddings"]
        (True, 'relu', True)
        >>> config_to_hf(qkv.Transformer(qkv.TransformerConfig(vocab_size=100, d_model=32,
        ...     num_heads=4, num_layers=2, d_ff=64, norm_eps=1e-6)), {"bos": 1})
        Traceback (most recent call last):
        ...
        ValueError: cannot export to Marian: norm_eps=1e-06; Marian's LayerNorms use epsilon 1e-05
    """
    if not isinstance(model, Transformer):
        raise TypeError(f"Marian export takes a Transformer, got {type(model).__name__}")
    config = model.config
    if config.norm_first:
        raise refusal(_FAMILY, "norm_first", True, "Marian's layers are post-norm "
                      "(LayerNorm(x + sublayer(x))), with no final LayerNorm")
    if config.norm_eps != _MARIAN_EPS:
        raise refusal(_FAMILY, "norm_eps", config.norm_eps,
                      f"Marian's LayerNorms use epsilon {_MARIAN_EPS:g}")
    _model_dim_order(model)                                             # refuses positions
    special = special_ids or {}
    if special.get("bos") is None:
        raise ValueError("cannot export to Marian without the decoder's start token: "
                         "MarianConfig needs decoder_start_token_id; pass the target tokenizer, "
                         "whose bos id it is")
    return {
        "model_type": "marian", "architectures": ["MarianMTModel"], "is_encoder_decoder": True,
        "vocab_size": config.vocab_size, "decoder_vocab_size": config.target_vocab_size,
        "share_encoder_decoder_embeddings": config.share_embeddings,
        "tie_word_embeddings": config.tie_output, "d_model": config.d_model,
        "encoder_layers": config.num_layers, "decoder_layers": config.num_layers,
        "encoder_attention_heads": config.num_heads, "decoder_attention_heads": config.num_heads,
        "encoder_ffn_dim": config.d_ff, "decoder_ffn_dim": config.d_ff,
        "activation_function": HF_ACTIVATIONS[config.activation], "dropout": config.dropout,
        "attention_dropout": config.attention_dropout, "activation_dropout": 0.0,
        "encoder_layerdrop": 0.0, "decoder_layerdrop": 0.0,
        "max_position_embeddings": config.max_len, "scale_embedding": config.scale_embeddings,
        "pad_token_id": config.pad_id if config.pad_id is not None else special.get("pad"),
        "eos_token_id": special.get("eos"), "forced_eos_token_id": special.get("eos"),
        "decoder_start_token_id": special.get("bos"),
    }


def weights_to_hf(model: Transformer) -> dict[str, Tensor]:
    """The tensors of ``model`` under Marian's names, ``E`` axes reordered (module docstring);
    call :func:`config_to_hf` first, which refuses what Marian cannot express."""
    order = _model_dim_order(model)
    reads = (lambda w: w) if order is None else (lambda w: w[:, order])   # (…, E) inputs
    writes = (lambda w: w) if order is None else (lambda w: w[order])     # (E, …) outputs
    config = model.config
    weights: dict[str, Tensor] = {}
    if config.share_embeddings:
        weights["model.shared.weight"] = reads(model.src_embedding.token.weight)
        if not config.tie_output:          # transformers then ties nothing: give all three
            for side in ("encoder", "decoder"):
                shared = weights["model.shared.weight"]
                weights[f"model.{side}.embed_tokens.weight"] = shared.clone()
    else:
        weights["model.encoder.embed_tokens.weight"] = reads(model.src_embedding.token.weight)
        weights["model.decoder.embed_tokens.weight"] = reads(model.tgt_embedding.token.weight)
    if not config.tie_output:
        weights["lm_head.weight"] = reads(model.output_layer.weight)
    _, bias = weight_and_bias(model.output_layer)
    weights["final_logits_bias"] = bias[None]                           # (1, V)
    for side, stack in (("encoder", model.encoder), ("decoder", model.decoder)):
        for i, layer in enumerate(stack.layers):
            prefix = f"model.{side}.layers.{i}."
            sublayers = [("self_attn", layer.self_attention, layer.self_attention_residual)]
            if side == "decoder":
                sublayers.append(("encoder_attn", layer.cross_attention,
                                  layer.cross_attention_residual))
            for name, attention, residual in sublayers:
                for ours, theirs in _ATTENTION.items():
                    weight, bias = weight_and_bias(getattr(attention, ours))
                    weights[f"{prefix}{name}.{theirs}.weight"] = reads(weight)
                    weights[f"{prefix}{name}.{theirs}.bias"] = bias
                _add(weights, f"{prefix}{name}.out_proj", attention.output_proj, writes)
                _add(weights, f"{prefix}{name}_layer_norm", residual.norm, writes)
            inner_weight, inner_bias = weight_and_bias(layer.feed_forward.inner)
            weights[f"{prefix}fc1.weight"] = reads(inner_weight)        # (d_ff, E)
            weights[f"{prefix}fc1.bias"] = inner_bias
            _add(weights, f"{prefix}fc2", layer.feed_forward.outer, writes)
            _add(weights, f"{prefix}final_layer_norm", layer.feed_forward_residual.norm, writes)
    return weights


def _add(weights: dict[str, Tensor], name: str, layer: nn.Module, writes) -> None:
    """A layer that writes the residual stream: weight rows and bias reordered."""
    weight, bias = weight_and_bias(layer)
    weights[f"{name}.weight"], weights[f"{name}.bias"] = writes(weight), writes(bias)


def _model_dim_order(model: Transformer) -> Tensor | None:
    """``None`` if the position vectors are Marian's sinusoids as they are, else the order of
    ``E`` under which they are (:func:`sinusoid_order`); refuses any other positions."""
    config = model.config
    marian = marian_positions_table(config.max_len, config.d_model)
    order = sinusoid_order(config.d_model)
    layouts = []
    for embedding in (model.src_embedding, model.tgt_embedding):
        table = position_table(embedding.positions, _FAMILY).detach().float().cpu()
        if torch.allclose(table, marian, rtol=0.0, atol=_TOLERANCE):
            layouts.append(None)
        elif torch.allclose(table[:, order], marian, rtol=0.0, atol=_TOLERANCE):
            layouts.append(order)
        else:
            raise refusal(_FAMILY, "positions", config.positions, "Marian's positions are fixed "
                          "sinusoids, which transformers recomputes, and these learned vectors "
                          "are not sinusoids")
    if (layouts[0] is None) != (layouts[1] is None):
        raise refusal(_FAMILY, "positions", config.positions, "the source and target position "
                      "tables are sinusoids in two different layouts")
    return layouts[0]
