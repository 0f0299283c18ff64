"""The Marian family (Opus-MT translation models) → :class:`qkv.Transformer`.

Marian is the paper's encoder–decoder almost unchanged: post-norm layers, sinusoidal positions,
one embedding matrix for source, target and output layer. What differs, and where it goes:

* **Positions.** Marian's sinusoids are laid out ``[sin(angles) | cos(angles)]`` (halves), not
  interleaved as in the paper and :func:`qkv.models.positions.sinusoidal_table`. The table
  (:func:`marian_positions_table`) is loaded, frozen, into each embedding's
  :class:`~qkv.models.positions.LearnedPositions` (``positions="learned"``).
* **Output bias.** Marian adds ``final_logits_bias`` to the logits: the output layer becomes an
  ``nn.Linear`` with a bias (its weight still tied to the embedding).
* **Embedding scale** (√d_model or 1) follows ``scale_embedding``; the activation
  ``activation_function`` (Opus-MT: ``"swish"`` → ``"silu"``); LayerNorm epsilon 1e-5.
* **Padding.** Marian starts decoding with its pad token (``decoder_start_token_id ==
  pad_token_id``). qkv's :class:`~qkv.Transformer` masks every ``config.pad_id`` token of the
  target, which would hide the start token from the decoder. The converted config therefore
  has ``pad_id=None`` — as in ``transformers``, masks come from the caller, not from the ids:
  for a padded source batch pass ``src_mask = qkv.padding_mask(src, tokenizer.pad_id)`` to
  ``encode`` and as ``memory_mask`` to ``decode``. (A single sentence needs no mask.)

Weight names, Hugging Face → qkv (``i`` = layer; ``model.`` prefix dropped)::

    shared                               src_embedding.token (= tgt_embedding.token = output_layer)
    final_logits_bias                    output_layer.bias
    encoder.layers.i.self_attn.q_proj    encoder.layers.i.self_attention.query_proj (k, v, out too)
    encoder.layers.i.self_attn_layer_norm   encoder.layers.i.self_attention_residual.norm
    encoder.layers.i.fc1, fc2            encoder.layers.i.feed_forward.inner, outer
    encoder.layers.i.final_layer_norm    encoder.layers.i.feed_forward_residual.norm
    decoder.layers.i.encoder_attn        decoder.layers.i.cross_attention
    decoder.layers.i.encoder_attn_layer_norm   decoder.layers.i.cross_attention_residual.norm
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn

from qkv.models.config import TransformerConfig
from qkv.models.positions import sinusoidal_table
from qkv.models.transformer import Transformer
from qkv.pretrained.loader import Checkpoint, assign_weights, require_files
from qkv.pretrained.tokenizers import MarianTokenizer

__all__ = ["config_from_hf", "convert", "load_tokenizer", "marian_positions_table"]

_DEFAULTS = dict(vocab_size=58101, decoder_vocab_size=None, max_position_embeddings=1024,
                 encoder_layers=12, encoder_ffn_dim=4096, encoder_attention_heads=16,
                 decoder_layers=12, decoder_ffn_dim=4096, decoder_attention_heads=16,
                 activation_function="gelu", d_model=1024, dropout=0.1, attention_dropout=0.0,
                 scale_embedding=False, pad_token_id=58100, eos_token_id=0,
                 decoder_start_token_id=58100, share_encoder_decoder_embeddings=True,
                 tie_word_embeddings=True)
_ACTIVATIONS = {"swish": "silu", "silu": "silu", "gelu": "gelu", "relu": "relu",
                "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}
_ATTENTIONS = {"q_proj": "query_proj", "k_proj": "key_proj", "v_proj": "value_proj",
               "out_proj": "output_proj"}


def marian_positions_table(max_len: int, d_model: int) -> Tensor:
    """Marian's sinusoidal encodings: the paper's angles, sines in the first half of each
    vector and cosines in the second (``[sin | cos]``), instead of interleaved.

    Shape:
        returns ``(max_len, d_model)``, float32.

    Example:
        >>> marian_positions_table(3, 4)[0].tolist()                  # sin 0, sin 0, cos 0, cos 0
        [0.0, 0.0, 1.0, 1.0]
    """
    table = sinusoidal_table(max_len, d_model)                          # [sin, cos, sin, cos…]
    return torch.cat([table[:, 0::2], table[:, 1::2]], dim=1)           # [sin… | cos…]


def config_from_hf(hf: dict) -> TransformerConfig:
    """The :class:`~qkv.TransformerConfig` of a Marian ``config.json`` (``pad_id=None``: see the
    module docstring).

    Example:
        >>> config = config_from_hf({"vocab_size": 100, "d_model": 32, "encoder_layers": 2,
        ...     "decoder_layers": 2, "encoder_attention_heads": 4, "decoder_attention_heads": 4,
        ...     "encoder_ffn_dim": 64, "decoder_ffn_dim": 64, "activation_function": "swish",
        ...     "pad_token_id": 99, "decoder_start_token_id": 99})
        >>> config.pad_id, config.activation, config.positions, config.share_embeddings
        (None, 'silu', 'learned', True)
    """
    get = {**_DEFAULTS, **hf}.__getitem__
    for encoder_key, decoder_key in (("encoder_layers", "decoder_layers"),
                                     ("encoder_attention_heads", "decoder_attention_heads"),
                                     ("encoder_ffn_dim", "decoder_ffn_dim")):
        if get(encoder_key) != get(decoder_key):
            raise ValueError(f"qkv's Transformer gives encoder and decoder the same sizes, but "
                             f"this Marian model has {encoder_key}={get(encoder_key)} and "
                             f"{decoder_key}={get(decoder_key)}")
    if get("activation_function") not in _ACTIVATIONS:
        raise ValueError(f"Marian activation_function {get('activation_function')!r} is not "
                         f"supported; supported: {', '.join(_ACTIVATIONS)}")
    shared = bool(get("share_encoder_decoder_embeddings"))
    return TransformerConfig(
        vocab_size=get("vocab_size"),
        tgt_vocab_size=None if shared else (get("decoder_vocab_size") or get("vocab_size")),
        d_model=get("d_model"), num_heads=get("encoder_attention_heads"),
        num_layers=get("encoder_layers"), d_ff=get("encoder_ffn_dim"), dropout=get("dropout"),
        attention_dropout=get("attention_dropout"), max_len=get("max_position_embeddings"),
        pad_id=None, positions="learned", activation=_ACTIVATIONS[get("activation_function")],
        norm_first=False, norm_eps=1e-5, bias=True, scale_embeddings=bool(get("scale_embedding")),
        share_embeddings=shared, tie_output=bool(get("tie_word_embeddings")))


def convert(hf_config: dict, checkpoint: Checkpoint) -> Transformer:
    """A :class:`qkv.Transformer` with the checkpoint's weights (names in the module docstring)."""
    config = config_from_hf(hf_config)
    model = Transformer(config)
    # Marian's logits have a bias: the output layer gets one (its weight stays tied).
    model.output_layer = nn.Linear(config.d_model, config.target_vocab_size, bias=True)
    if config.tie_output:
        model.output_layer.weight = model.tgt_embedding.token.weight
    checkpoint.strip_prefix("model.")
    take = checkpoint.take
    table = marian_positions_table(config.max_len, config.d_model)
    weights = {}
    if config.share_embeddings:
        weights["src_embedding.token.weight"] = take("shared.weight")
    else:
        weights["src_embedding.token.weight"] = take("encoder.embed_tokens.weight")
        weights["tgt_embedding.token.weight"] = take("decoder.embed_tokens.weight")
    if not config.tie_output:
        weights["output_layer.weight"] = take("lm_head.weight")
    weights["output_layer.bias"] = (take("final_logits_bias").reshape(-1)
                                    if "final_logits_bias" in checkpoint
                                    else torch.zeros(config.target_vocab_size))
    for side, embedding in (("encoder", "src_embedding"), ("decoder", "tgt_embedding")):
        name = f"{side}.embed_positions.weight"                         # not saved by newer versions
        weights[f"{embedding}.positions.embedding.weight"] = (
            take(name) if name in checkpoint else table)
        for i in range(config.num_layers):
            theirs, ours = f"{side}.layers.{i}.", f"{side}.layers.{i}."
            sublayers = {"self_attn": "self_attention"}
            if side == "decoder":
                sublayers["encoder_attn"] = "cross_attention"
            pairs = {f"{a}.{p}": f"{b}.{q}" for a, b in sublayers.items()
                     for p, q in _ATTENTIONS.items()}
            pairs.update({f"{a}_layer_norm": f"{b}_residual.norm" for a, b in sublayers.items()})
            pairs.update({"fc1": "feed_forward.inner", "fc2": "feed_forward.outer",
                          "final_layer_norm": "feed_forward_residual.norm"})
            for hf_name, qkv_name in pairs.items():
                for kind in ("weight", "bias"):
                    weights[f"{ours}{qkv_name}.{kind}"] = take(f"{theirs}{hf_name}.{kind}")
    # Tied copies of the shared matrix, when a checkpoint stores them.
    ignore = ["encoder.embed_tokens.", "decoder.embed_tokens."] if config.share_embeddings else []
    if config.tie_output:
        ignore.append("lm_head.")
    checkpoint.check_all_used("Marian", ignore=ignore)
    assign_weights(model, weights, checkpoint.folder)
    for embedding in (model.src_embedding, model.tgt_embedding):
        embedding.positions.embedding.weight.requires_grad_(False)     # fixed sinusoids
    return model


def load_tokenizer(folder: Path, hf_config: dict) -> MarianTokenizer:
    """Marian's SentencePiece tokenizer from ``source.spm``, ``target.spm`` and ``vocab.json``,
    with ``bos_id`` = ``decoder_start_token_id`` (the pad token), ``eos_id``, ``pad_id`` and
    ``unk_id`` (``<unk>``)."""
    require_files(folder, ["source.spm", "target.spm", "vocab.json"],
                  "the Marian tokenizer (SentencePiece)")
    if (folder / "target_vocab.json").is_file():
        raise ValueError(f"{folder} has separate source and target vocabularies "
                         f"(target_vocab.json); qkv's MarianTokenizer supports one shared vocab.json")
    get = {**_DEFAULTS, **hf_config}.__getitem__
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    return MarianTokenizer((folder / "source.spm").read_bytes(),
                           (folder / "target.spm").read_bytes(), vocab,
                           bos_id=get("decoder_start_token_id"), eos_id=get("eos_token_id"),
                           pad_id=get("pad_token_id"), unk_id=vocab.get("<unk>"))
