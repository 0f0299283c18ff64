"""The GPT-2 family → :class:`qkv.LanguageModel`.

What GPT-2 is, in qkv's terms: learned absolute positions, no √d_model scaling, pre-norm layers
(``norm_first``, with a final LayerNorm ``ln_f``), GELU's tanh approximation (``"gelu_new"``),
the output layer tied to the token embedding, and no padding token (``pad_id=None``).

Two differences in how the weights are stored:

* GPT-2's ``Conv1D`` computes ``x @ W + b`` with ``W`` of shape ``(in, out)``; ``nn.Linear``
  computes ``x @ Wᵀ + b`` with ``(out, in)``, so every matrix is transposed;
* one fused ``c_attn`` projects to ``[query | key | value]`` ``(E → 3E)``; it is split into
  qkv's three projections.

Weight names, Hugging Face → qkv (``i`` = layer; a ``transformer.`` prefix is dropped)::

    wte, wpe           embedding.token, embedding.positions.embedding
    h.i.ln_1           layers.i.self_attention_residual.norm
    h.i.attn.c_attn    layers.i.self_attention.{query,key,value}_proj   (split, transposed)
    h.i.attn.c_proj    layers.i.self_attention.output_proj              (transposed)
    h.i.ln_2           layers.i.feed_forward_residual.norm
    h.i.mlp.c_fc       layers.i.feed_forward.inner                      (transposed)
    h.i.mlp.c_proj     layers.i.feed_forward.outer                      (transposed)
    ln_f               final_norm
"""

from __future__ import annotations

from pathlib import Path

from qkv.models.config import LanguageModelConfig
from qkv.models.language_model import LanguageModel
from qkv.pretrained.loader import Checkpoint, assign_weights
from qkv.pretrained.tokenizers import HuggingFaceTokenizer

__all__ = ["config_from_hf", "convert", "load_tokenizer"]

_DEFAULTS = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12,
                 n_inner=None, activation_function="gelu_new", resid_pdrop=0.1, embd_pdrop=0.1,
                 attn_pdrop=0.1, layer_norm_epsilon=1e-5, scale_attn_weights=True,
                 scale_attn_by_inverse_layer_idx=False, reorder_and_upcast_attn=False,
                 tie_word_embeddings=True, bos_token_id=50256, eos_token_id=50256)
_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu",
                "relu": "relu", "silu": "silu", "swish": "silu"}
END_OF_TEXT = "<|endoftext|>"


def config_from_hf(hf: dict) -> LanguageModelConfig:
    """The :class:`~qkv.LanguageModelConfig` of a GPT-2 ``config.json``.

    Example:
        >>> config = config_from_hf({"vocab_size": 100, "n_embd": 32, "n_layer": 2, "n_head": 4})
        >>> config.d_ff, config.activation, config.norm_first, config.pad_id
        (128, 'gelu_tanh', True, None)
    """
    get = {**_DEFAULTS, **hf}.__getitem__
    for flag, wanted in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                         ("reorder_and_upcast_attn", False)):
        if get(flag) != wanted:
            raise ValueError(f"GPT-2 with {flag}={get(flag)} is not supported; qkv's attention "
                             f"is softmax(QKᵀ/√D)V ({flag}={wanted})")
    if get("activation_function") not in _ACTIVATIONS:
        raise ValueError(f"GPT-2 activation_function {get('activation_function')!r} is not "
                         f"supported; supported: {', '.join(_ACTIVATIONS)}")
    d_model = get("n_embd")
    return LanguageModelConfig(
        vocab_size=get("vocab_size"), d_model=d_model, num_heads=get("n_head"),
        num_layers=get("n_layer"), d_ff=get("n_inner") or 4 * d_model,
        dropout=get("resid_pdrop"), attention_dropout=get("attn_pdrop"),
        max_len=get("n_positions"), pad_id=None, positions="learned",
        activation=_ACTIVATIONS[get("activation_function")], norm_first=True,
        norm_eps=get("layer_norm_epsilon"), bias=True, scale_embeddings=False,
        tie_output=bool(get("tie_word_embeddings")))


def convert(hf_config: dict, checkpoint: Checkpoint) -> LanguageModel:
    """A :class:`qkv.LanguageModel` with the checkpoint's weights (names in the module docstring)."""
    config = config_from_hf(hf_config)
    checkpoint.strip_prefix("transformer.")
    take = checkpoint.take
    weights = {
        "embedding.token.weight": take("wte.weight"),
        "embedding.positions.embedding.weight": take("wpe.weight"),
        "final_norm.weight": take("ln_f.weight"),
        "final_norm.bias": take("ln_f.bias"),
    }
    for i in range(config.num_layers):
        ours, theirs = f"layers.{i}.", f"h.{i}."
        for norm, residual in (("ln_1", "self_attention_residual"),
                               ("ln_2", "feed_forward_residual")):
            for kind in ("weight", "bias"):
                weights[f"{ours}{residual}.norm.{kind}"] = take(f"{theirs}{norm}.{kind}")
        # Conv1D (in, out) → Linear (out, in); c_attn's out is [query | key | value].
        fused_weight = take(f"{theirs}attn.c_attn.weight").T            # (3E, E)
        fused_bias = take(f"{theirs}attn.c_attn.bias")                  # (3E,)
        for part, weight, bias in zip(("query", "key", "value"),
                                      fused_weight.split(config.d_model),
                                      fused_bias.split(config.d_model)):
            weights[f"{ours}self_attention.{part}_proj.weight"] = weight
            weights[f"{ours}self_attention.{part}_proj.bias"] = bias
        for theirs_name, ours_name in (("attn.c_proj", "self_attention.output_proj"),
                                       ("mlp.c_fc", "feed_forward.inner"),
                                       ("mlp.c_proj", "feed_forward.outer")):
            weights[f"{ours}{ours_name}.weight"] = take(f"{theirs}{theirs_name}.weight").T
            weights[f"{ours}{ours_name}.bias"] = take(f"{theirs}{theirs_name}.bias")
    if config.tie_output:
        ignore = ["lm_head."]                                           # a copy of wte
    else:
        ignore = []
        weights["output_layer.weight"] = take("lm_head.weight")
    # Old checkpoints also store the causal mask as buffers h.i.attn.bias / h.i.attn.masked_bias.
    checkpoint.tensors = {name: tensor for name, tensor in checkpoint.tensors.items()
                          if not name.endswith((".attn.bias", ".attn.masked_bias"))}
    checkpoint.check_all_used("GPT-2", ignore=ignore)
    model = LanguageModel(config)
    assign_weights(model, {name: t.contiguous() for name, t in weights.items()},
                   checkpoint.folder)
    return model


def load_tokenizer(folder: Path, hf_config: dict) -> HuggingFaceTokenizer:
    """The byte-level BPE tokenizer of ``tokenizer.json`` (or ``vocab.json`` + ``merges.txt``),
    with ``bos_id = eos_id`` = ``<|endoftext|>``, no pad id, and prompts read as they are."""
    from tokenizers import Tokenizer as RawTokenizer, decoders, models, pre_tokenizers

    if (folder / "tokenizer.json").is_file():
        raw = RawTokenizer.from_file(str(folder / "tokenizer.json"))
    elif (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        raw = RawTokenizer(models.BPE.from_file(str(folder / "vocab.json"),
                                                str(folder / "merges.txt")))
        raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        raw.decoder = decoders.ByteLevel()
        if raw.token_to_id(END_OF_TEXT) is not None:
            raw.add_special_tokens([END_OF_TEXT])
    else:
        from qkv.pretrained.loader import require_files

        require_files(folder, ["tokenizer.json"], "the GPT-2 tokenizer (byte-level BPE; or "
                      "vocab.json and merges.txt)")
    end = raw.token_to_id(END_OF_TEXT)
    if end is None:                                                     # not GPT-2's own vocab
        ids = [{**_DEFAULTS, **hf_config}[key] for key in ("bos_token_id", "eos_token_id")]
        bos, eos = (i if i is not None and i < raw.get_vocab_size() else None for i in ids)
    else:
        bos = eos = end
    return HuggingFaceTokenizer(raw, bos_id=bos, eos_id=eos, pad_id=None, prompt_bos=False,
                                unk_id=None, max_length=hf_config.get("n_positions"))
