""":class:`qkv.LanguageModel` → ``GPT2LMHeadModel``: the inverse of :mod:`qkv.pretrained.gpt2`.

GPT-2, in qkv's terms, is a pre-norm decoder (``norm_first``, with a final LayerNorm) with
absolute positions and no √d_model scale. As for BERT (:mod:`qkv.export.bert`), sinusoidal
positions become GPT-2's position table, ``bias=False`` becomes zero biases, and an untied
model (``tie_output=False``) gets its own ``lm_head``. Any activation qkv has is expressed
(``gelu_tanh`` as ``"gelu_pytorch_tanh"``, the same function as GPT-2's ``"gelu_new"``), and so
is any ``pad_id``: it is recorded as ``pad_token_id``; in ``transformers`` a padded batch then
needs ``attention_mask = ids != pad_id``, which qkv derives from the ids itself.

Refused, with a ValueError naming the field: ``norm_first=False`` (GPT-2 is pre-norm),
``positions="rotary"``, and ``scale_embeddings=True`` with ``tie_output=True`` (the scale could
only be multiplied into ``wte``, which the tied output layer reads unscaled).

Two differences in how the weights are stored, as in the loader: GPT-2's ``Conv1D`` holds
``(in, out)`` matrices, so every matrix is transposed; and one fused ``c_attn`` projects to
``[query | key | value]``, so qkv's three projections are concatenated.

Weight names, qkv → Hugging Face (``i`` = layer; all but ``lm_head`` under ``transformer.``)::

    embedding.token (· scale)                 wte
    embedding.positions (table or embedding)  wpe
    layers.i.self_attention_residual.norm     h.i.ln_1
    layers.i.self_attention.{query,key,value}_proj   h.i.attn.c_attn   (concatenated, transposed)
    layers.i.self_attention.output_proj       h.i.attn.c_proj                  (transposed)
    layers.i.feed_forward_residual.norm       h.i.ln_2
    layers.i.feed_forward.inner               h.i.mlp.c_fc                     (transposed)
    layers.i.feed_forward.outer               h.i.mlp.c_proj                   (transposed)
    final_norm                                ln_f
    output_layer                              lm_head           (only when not tied to wte)
"""

from __future__ import annotations

import torch
from torch import Tensor

from qkv.export._common import HF_ACTIVATIONS, position_table, refusal, weight_and_bias
from qkv.models.language_model import LanguageModel

__all__ = ["config_to_hf", "weights_to_hf"]

_FAMILY = "GPT-2"


def config_to_hf(model: LanguageModel, special_ids: dict[str, int | None] | None = None) -> dict:
    """The ``config.json`` of ``model`` as a ``GPT2LMHeadModel``.

    Args:
        model: the language model.
        special_ids: ``bos``, ``eos`` and ``pad`` ids of its tokenizer, recorded as
            ``bos_token_id``… (the config's own ``pad_id`` comes first).

    Raises:
        ValueError: a field GPT-2 cannot express (see the module docstring).

    Example:
        >>> import qkv
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=50, d_model=32,
        ...     num_heads=4, num_layers=2, d_ff=64, positions="learned", norm_first=True,
        ...     scale_embeddings=False, activation="gelu_tanh"))
        >>> hf = config_to_hf(model, {"bos": 1, "eos": 2, "pad": 0})
        >>> hf["n_embd"], hf["n_inner"], hf["activation_function"], hf["pad_token_id"]
        (32, 64, 'gelu_pytorch_tanh', 0)
    """
    if not isinstance(model, LanguageModel):
        raise TypeError(f"GPT-2 export takes a LanguageModel, got {type(model).__name__}")
    config = model.config
    if not config.norm_first:
        raise refusal(_FAMILY, "norm_first", False, "GPT-2's layers are pre-norm "
                      "(x + sublayer(LayerNorm(x))), with a final LayerNorm")
    if config.scale_embeddings and config.tie_output:
        raise refusal(_FAMILY, "scale_embeddings", True, "GPT-2 does not scale its embeddings, "
                      "and with tie_output=True the √d_model factor cannot be moved into wte "
                      "without scaling the logits too")
    position_table(model.embedding.positions, _FAMILY)                 # refuses rotary
    special = special_ids or {}
    return {
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
        "vocab_size": config.vocab_size, "n_positions": config.max_len,
        "n_embd": config.d_model, "n_layer": config.num_layers, "n_head": config.num_heads,
        "n_inner": config.d_ff, "activation_function": HF_ACTIVATIONS[config.activation],
        "resid_pdrop": config.dropout, "embd_pdrop": config.dropout,
        "attn_pdrop": config.attention_dropout, "layer_norm_epsilon": config.norm_eps,
        "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False, "tie_word_embeddings": config.tie_output,
        "bos_token_id": special.get("bos"), "eos_token_id": special.get("eos"),
        "pad_token_id": config.pad_id if config.pad_id is not None else special.get("pad"),
    }


def weights_to_hf(model: LanguageModel) -> dict[str, Tensor]:
    """The tensors of ``model`` under GPT-2's names (table in the module docstring); call
    :func:`config_to_hf` first, which refuses what GPT-2 cannot express."""
    embedding = model.embedding
    weights = {
        "transformer.wte.weight": embedding.token.weight * embedding.scale,
        "transformer.wpe.weight": position_table(embedding.positions, _FAMILY),
    }
    weights["transformer.ln_f.weight"], weights["transformer.ln_f.bias"] = weight_and_bias(
        model.final_norm)
    for i, layer in enumerate(model.layers):
        theirs = f"transformer.h.{i}."
        attention = layer.self_attention
        projections = [weight_and_bias(p) for p in (attention.query_proj, attention.key_proj,
                                                    attention.value_proj)]
        weights[f"{theirs}attn.c_attn.weight"] = torch.cat([w.T for w, _ in projections], 1)
        weights[f"{theirs}attn.c_attn.bias"] = torch.cat([b for _, b in projections])   # (3E,)
        for name, module, transpose in (
                ("ln_1", layer.self_attention_residual.norm, False),
                ("attn.c_proj", attention.output_proj, True),
                ("ln_2", layer.feed_forward_residual.norm, False),
                ("mlp.c_fc", layer.feed_forward.inner, True),                     # (E, d_ff)
                ("mlp.c_proj", layer.feed_forward.outer, True)):                  # (d_ff, E)
            weight, bias = weight_and_bias(module)
            weights[f"{theirs}{name}.weight"] = weight.T if transpose else weight
            weights[f"{theirs}{name}.bias"] = bias
    if not model.config.tie_output:
        weights["lm_head.weight"] = model.output_layer.weight
    return weights
