"""Inference fast paths: the models' own computation with fewer operations, for no-grad use.

The modules (:class:`~qkv.attention.MultiHeadAttention`, :class:`~qkv.models.layers.DecoderLayer`,
…) are the readable reference and what :func:`qkv.trace` sees. When nothing watches and nothing
learns — eval mode, no autograd, no recorder, no hooks — two jobs can skip most of their work:

* **step-by-step decoding** (:class:`IncrementalDecoder`, used by :func:`qkv.generate`): one
  projection for query, key and value (their weights concatenated once), keys and values written
  in place into a preallocated cache, the residual add and the activation fused into the
  projections, no argument checks per step, and logits for the last position only;
* **encoding a padded batch** (:func:`unpadded_hidden_states`, used by
  :func:`qkv.embed_sentences`): only the real tokens go through the projections and the
  feed-forward network, packed into one ``(N, E)`` matrix; attention alone sees the padded layout.

On the CPU, in float32, the projections run on oneDNN (``torch.ops.mkldnn._linear_pointwise``, the
kernel ``torch.compile`` uses for CPU linears), which reads weights at close to memory bandwidth
one token at a time and multiplies batches several times faster than the default BLAS on some
CPUs; it is checked against ``F.linear`` once per process and skipped if absent or different.
Int8 linears (:mod:`qkv.quantization`) run as they are. Results equal the modules' to float
rounding (the tests hold them to 1e-4 and identical tokens); where a model has a part these paths
do not know, :func:`decoding_support` says why and the callers use the modules.

Shape letters are those of :mod:`qkv.attention.functional`; ``C`` is the cache's capacity,
``N`` the number of real tokens of a padded batch.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qkv.attention.functional import scaled_dot_product_attention
from qkv.attention.multi_head import MultiHeadAttention
from qkv.models.feed_forward import _ACTIVATIONS, FeedForward
from qkv.models.residual import PostNorm, PreNorm

__all__ = ["IncrementalDecoder", "decoding_support", "encoding_support",
           "unpadded_hidden_states", "onednn_linear_available"]

# FeedForward's activation → oneDNN's post-op (name, scalars, algorithm).
_POST_OPS = {"relu": ("relu", [], ""), "gelu": ("gelu", [], "none"),
             "gelu_tanh": ("gelu", [], "tanh"), "silu": ("swish", [], "")}


@functools.cache
def onednn_linear_available(post_op: str = "none") -> bool:
    """Whether oneDNN's CPU linear is there and agrees with ``F.linear`` (with ``post_op``, one
    of ``"none"``, ``"add"`` or an activation of :class:`FeedForward`); checked once."""
    if not (hasattr(torch.ops, "mkldnn") and torch.backends.mkldnn.is_available()):
        return False
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 24, generator=generator)
    weight, bias = torch.randn(40, 24, generator=generator), torch.randn(40, generator=generator)
    other = torch.randn(3, 5, 40, generator=generator)
    expected = F.linear(x, weight, bias)
    try:
        with torch.no_grad():
            if post_op == "add":
                got = torch.ops.mkldnn._linear_pointwise.binary(x, other, weight, bias, "add")
                expected = expected + other
            elif post_op == "none":
                got = torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
            else:
                got = torch.ops.mkldnn._linear_pointwise(x, weight, bias, *_POST_OPS[post_op])
                expected = _ACTIVATIONS[post_op](expected)
    except (RuntimeError, AttributeError, NotImplementedError):
        return False
    return got.shape == expected.shape and torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


class _Projection:
    """One or more linear maps of the same input as one: ``x → [x W_1ᵀ + b_1 | x W_2ᵀ + b_2 | …]``,
    optionally followed by an activation and a residual add, fused into the kernel where it can.

    Weights of ``nn.Linear`` are concatenated once (a copy only when there are several); int8
    linears (:class:`qkv.quantization.Int8Linear`) are fused by their own class.
    """

    def __init__(self, linears: Sequence[nn.Module]) -> None:
        from qkv.quantization import Int8Linear

        self.module: nn.Module | None = None
        self.weight = self.bias = None
        if all(type(linear) is nn.Linear for linear in linears):
            weights = [linear.weight for linear in linears]
            self.weight = weights[0] if len(weights) == 1 else torch.cat(weights)   # (out, in)
            biases = [linear.bias for linear in linears]
            if all(b is None for b in biases):
                self.bias = None
            else:
                self.bias = torch.cat([b if b is not None else w.new_zeros(w.shape[0])
                                       for b, w in zip(biases, weights)])
            self.onednn = (self.weight.device.type == "cpu"
                           and self.weight.dtype == torch.float32
                           and onednn_linear_available())
        elif all(type(linear) is Int8Linear for linear in linears):
            self.module = Int8Linear.concatenate(list(linears))
            self.onednn = False
        else:
            raise TypeError("not a linear layer this path knows")

    def __call__(self, x: Tensor, activation: str | None = None,
                 residual: Tensor | None = None) -> Tensor:
        if self.onednn:
            linear = torch.ops.mkldnn._linear_pointwise
            if activation is not None and onednn_linear_available(activation):
                return linear(x, self.weight, self.bias, *_POST_OPS[activation])
            if activation is None and residual is not None and onednn_linear_available("add"):
                return linear.binary(x, residual, self.weight, self.bias, "add")
            y = linear(x, self.weight, self.bias, "none", [], "")
        elif self.module is not None:
            y = self.module(x)
        else:
            y = F.linear(x, self.weight, self.bias)
        if activation is not None:
            y = _ACTIVATIONS[activation](y)
        return y if residual is None else y + residual


def _unsupported_module(model: nn.Module) -> str | None:
    """Why ``model`` must run on its modules (training, autograd, a recorder, a hook), else None."""
    if model.training:
        return "the model is in training mode (dropout)"
    if torch.is_grad_enabled() and any(p.requires_grad for p in model.parameters()):
        return "autograd is recording (call it under torch.no_grad() or inference_mode())"
    global_hooks = (nn.modules.module._global_forward_hooks,
                    nn.modules.module._global_forward_pre_hooks)
    if any(global_hooks):
        return "a global forward hook is registered"
    for name, module in model.named_modules():
        if isinstance(module, MultiHeadAttention) and module.recorder is not None:
            return f"{name} is being recorded (qkv.trace / qkv.explain)"
        if module._forward_hooks or module._forward_pre_hooks:
            return f"{name or 'the model'} has a forward hook"
    return None


def _unsupported_layer(layer: nn.Module, *, cross_attention: bool) -> str | None:
    """Why a decoder or encoder layer is not one these paths compute, else None."""
    from qkv.quantization import Int8Linear

    attention = layer.self_attention
    if type(attention) is not MultiHeadAttention:
        return "a self-attention that is not qkv's MultiHeadAttention"
    if cross_attention and getattr(layer, "cross_attention", None) is not None:
        return "cross-attention (an encoder–decoder)"
    if type(layer.feed_forward) is not FeedForward:
        return "a feed-forward network that is not qkv's FeedForward"
    residuals = (layer.self_attention_residual, layer.feed_forward_residual)
    if any(type(r) not in (PreNorm, PostNorm) for r in residuals):
        return "a residual wrapper that is not PreNorm or PostNorm"
    if type(residuals[0]) is not type(residuals[1]):
        return "mixed norm placements within a layer"
    if any(type(r.norm) is not nn.LayerNorm for r in residuals):
        return "a norm that is not a LayerNorm"
    fused = (attention.query_proj, attention.key_proj, attention.value_proj)
    alone = (attention.output_proj, layer.feed_forward.inner, layer.feed_forward.outer)
    kinds = (nn.Linear, Int8Linear)
    if any(type(m) not in kinds for m in fused + alone):
        return "a projection that is neither nn.Linear nor qkv's Int8Linear"
    if len({type(m) for m in fused}) > 1 or len({m.dynamic for m in fused
                                                 if type(m) is Int8Linear}) > 1:
        return "query, key and value projections of different kinds"
    if attention.kv_dim != attention.d_model or attention.value_dim != attention.d_model:
        return "keys or values of another width than the queries"
    return None


class _Block:
    """A layer's parameters arranged for the fast paths: fused projections, norms, sizes."""

    def __init__(self, layer: nn.Module) -> None:
        attention: MultiHeadAttention = layer.self_attention
        self.pre_norm = type(layer.self_attention_residual) is PreNorm
        self.norms = (layer.self_attention_residual.norm, layer.feed_forward_residual.norm)
        self.query_key_value = _Projection([attention.query_proj, attention.key_proj,
                                            attention.value_proj])
        self.output = _Projection([attention.output_proj])
        self.inner = _Projection([layer.feed_forward.inner])
        self.outer = _Projection([layer.feed_forward.outer])
        self.activation = layer.feed_forward.activation
        self.rotary = attention.rotary
        self.H, self.Hkv, self.D = attention.num_heads, attention.num_kv_heads, attention.head_dim
        self.E = attention.d_model
        self.width = self.E + 2 * self.Hkv * self.D                    # [query | key | value]

    @staticmethod
    def _norm(norm: nn.LayerNorm, x: Tensor) -> Tensor:
        return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)

    def forward(self, x: Tensor, attend) -> Tensor:
        """The layer on ``x (…, E)``; ``attend(h)`` maps the attention input to the merged heads
        ``(…, E)`` (before W^O)."""
        first, second = self.norms
        if self.pre_norm:                           # x + Sublayer(LayerNorm(x)), twice
            x = self.output(attend(self._norm(first, x)), residual=x)
            hidden = self.inner(self._norm(second, x), activation=self.activation)
            return self.outer(hidden, residual=x)
        x = self._norm(first, self.output(attend(x), residual=x))      # LayerNorm(x + Sublayer(x))
        hidden = self.inner(x, activation=self.activation)
        return self._norm(second, self.outer(hidden, residual=x))


# -- step-by-step decoding ------------------------------------------------------------------------

def decoding_support(model: nn.Module) -> str | None:
    """``None`` if :class:`IncrementalDecoder` can run ``model`` now, else the reason it cannot.

    Example:
        >>> import qkv
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=12, d_model=16,
        ...     num_heads=2, num_layers=1, d_ff=32))
        >>> decoding_support(model)
        'the model is in training mode (dropout)'
        >>> with torch.no_grad():
        ...     decoding_support(model.eval()) is None
        True
    """
    from qkv.models.language_model import LanguageModel
    from qkv.quantization import Int8Linear

    if type(model) is not LanguageModel:
        return f"a {type(model).__name__}, not a qkv.LanguageModel"
    reason = _unsupported_module(model)
    if reason is not None:
        return reason
    for layer in model.layers:
        reason = _unsupported_layer(layer, cross_attention=True)
        if reason is not None:
            return reason
    if model.final_norm is not None and type(model.final_norm) is not nn.LayerNorm:
        return "a final norm that is not a LayerNorm"
    if type(model.output_layer) not in (nn.Linear, Int8Linear):
        return "an output layer that is not a linear layer"
    return None


class IncrementalDecoder:
    """Next-token logits of a :class:`~qkv.LanguageModel`, one call per decoding step, with its
    own preallocated key/value cache: the fast path of :func:`qkv.generate`.

    Each call takes the tokens after the ones already seen (the prompt first, then one per step)
    and returns the logits of the last one, as ``model(ids, positions=…, cache=…)[:, -1]`` does.
    Check :func:`decoding_support` first; the model must not change while a decoder is in use
    (it holds the concatenated query/key/value weights).

    Args:
        model: the language model, in eval mode.
        capacity: positions to reserve (prompt + new tokens); more grow the cache by doubling.

    Shape:
        ``ids (B, T)``, ``positions (B, T)`` or ``(T,)`` → logits ``(B, V)``.

    Example:
        >>> import qkv
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=12, d_model=16,
        ...     num_heads=2, num_layers=2, d_ff=32)).eval()
        >>> ids = torch.tensor([[3, 4, 5, 6]])
        >>> with torch.no_grad():
        ...     decoder = IncrementalDecoder(model, capacity=4)
        ...     steps = [decoder(ids[:, :2], torch.arange(2)), decoder(ids[:, 2:3], torch.arange(2, 3))]
        ...     full = model(ids[:, :3])
        >>> torch.allclose(steps[1], full[:, -1], atol=1e-5)
        True
    """

    def __init__(self, model: nn.Module, capacity: int = 0) -> None:
        with torch.no_grad():                       # its calls never record gradients
            reason = decoding_support(model)
        if reason is not None:
            raise ValueError(f"IncrementalDecoder cannot run this model: {reason}")
        self.model = model
        self.pad_id = model.config.pad_id
        self.blocks = [_Block(layer) for layer in model.layers]
        self.head = _Projection([model.output_layer])
        self.capacity = capacity
        self.length = 0                                                 # S, positions seen
        self.caches: list[Tensor] = []                                  # (B, C, width) per layer
        self.valid: Tensor | None = None                                # (B, C), with a pad id

    @torch.no_grad()
    def __call__(self, ids: Tensor, positions: Tensor) -> Tensor:
        B, T = ids.shape
        start, end = self.length, self.length + T
        if not self.caches or end > self.caches[0].shape[1] or self.caches[0].shape[0] != B:
            self._grow(B, end, ids.device)
        mask = None
        if self.pad_id is not None:
            self.valid[:, start:end] = ids != self.pad_id
            mask = self.valid[:, None, None, :end]                     # (B, 1, 1, S)
        x = self.model.embedding(ids, positions)                        # (B, T, E)
        for block, cache in zip(self.blocks, self.caches):
            x = block.forward(x, lambda h, block=block, cache=cache: self._attend(
                block, cache, h, positions, mask, start, end))          # (B, T, E)
        self.length = end
        x = x[:, -1]                                                    # (B, E)
        if self.model.final_norm is not None:
            x = self.model.final_norm(x)
        return self.head(x.contiguous())                                # (B, V)

    def _attend(self, block: _Block, cache: Tensor, h: Tensor, positions: Tensor,
                mask: Tensor | None, start: int, end: int) -> Tensor:
        """Self-attention of the new positions to all of them so far; the merged heads."""
        B, T, _ = h.shape
        E, H, Hkv, D = block.E, block.H, block.Hkv, block.D
        projected = block.query_key_value(h)                            # (B, T, width)
        cache[:, start:end] = projected                                 # in place
        query = projected[..., :E].view(B, T, H, D).transpose(1, 2)     # (B, H, T, D)
        if block.rotary is not None:
            query = block.rotary.rotate(query, positions)
            new_key = cache[:, start:end, E:E + Hkv * D].view(B, T, Hkv, D).transpose(1, 2)
            rotated = block.rotary.rotate(new_key, positions)           # (B, Hkv, T, D)
            cache[:, start:end, E:E + Hkv * D] = rotated.transpose(1, 2).reshape(B, T, Hkv * D)
        key = cache[:, :end, E:E + Hkv * D].view(B, end, Hkv, D).transpose(1, 2)   # (B, Hkv, S, D)
        value = cache[:, :end, E + Hkv * D:].view(B, end, Hkv, D).transpose(1, 2)  # (B, Hkv, S, D)
        if Hkv != H:                                # grouped-query: head j reads j // group
            key = key.repeat_interleave(H // Hkv, dim=1)                # (B, H, S, D)
            value = value.repeat_interleave(H // Hkv, dim=1)            # (B, H, S, D)
        if mask is None and T == 1:                 # one query sees every key: no mask at all
            heads = F.scaled_dot_product_attention(query, key, value)   # (B, H, 1, D)
        elif mask is None and start == 0:           # a prompt: plain causal
            heads = F.scaled_dot_product_attention(query, key, value, is_causal=True)
        else:                                       # padding and/or queries after cached keys
            heads, _ = scaled_dot_product_attention(query, key, value, mask, causal=True)
        return heads.transpose(1, 2).reshape(B, T, E)                   # (B, T, E)

    def _grow(self, B: int, end: int, device: torch.device) -> None:
        """Caches for ``B`` rows and at least ``end`` positions, the cached ones copied."""
        capacity = max(end, self.capacity, 2 * self.caches[0].shape[1] if self.caches else 0)
        dtype = self.model.embedding.token.weight.dtype
        caches = []
        for block, old in zip(self.blocks, self.caches or [None] * len(self.blocks)):
            cache = torch.empty(B, capacity, block.width, dtype=dtype, device=device)
            if old is not None and self.length:
                cache[:, :self.length] = old[:, :self.length]
            caches.append(cache)
        self.caches = caches
        if self.pad_id is not None:
            valid = torch.ones(B, capacity, dtype=torch.bool, device=device)
            if self.valid is not None and self.length:
                valid[:, :self.length] = self.valid[:, :self.length]
            self.valid = valid

    def select(self, rows: Tensor) -> None:
        """Keep batch rows ``rows (B',)`` in that order (beam search, several samples per row)."""
        if not self.caches:
            return
        S = self.length
        caches = []
        for cache in self.caches:
            kept = torch.empty(len(rows), *cache.shape[1:], dtype=cache.dtype, device=cache.device)
            kept[:, :S] = cache[:, :S].index_select(0, rows)
            caches.append(kept)
        self.caches = caches
        if self.valid is not None:
            self.valid = self.valid.index_select(0, rows)


# -- encoding a padded batch ----------------------------------------------------------------------

def encoding_support(model: nn.Module) -> str | None:
    """``None`` if :func:`unpadded_hidden_states` can run ``model`` now, else the reason."""
    from qkv.models.encoder_model import EncoderModel

    if type(model) is not EncoderModel:
        return f"a {type(model).__name__}, not a qkv.EncoderModel"
    reason = _unsupported_module(model)
    if reason is not None:
        return reason
    for layer in model.layers:
        reason = _unsupported_layer(layer, cross_attention=False)
        if reason is not None:
            return reason
    if model.final_norm is not None and type(model.final_norm) is not nn.LayerNorm:
        return "a final norm that is not a LayerNorm"
    return None


@torch.no_grad()
def unpadded_hidden_states(model: nn.Module, ids: Tensor, valid: Tensor,
                           token_types: Tensor | None = None) -> Tensor:
    """An :class:`~qkv.EncoderModel`'s last hidden states with padding skipped: equal to
    ``model(ids, mask=valid[:, None, None, :])`` at the real tokens, zeros at the padding.

    Only the ``N`` real tokens go through the projections, the feed-forward networks and the
    norms (packed into ``(N, E)``); attention scatters them back to ``(B, T)`` to attend, the
    padding masked out as keys. A model :func:`encoding_support` refuses runs on its modules (its
    padding positions then zeroed too).

    Args:
        model: a BERT-style encoder, e.g. ``load_pretrained("minilm")[0]``.
        ids: token ids.
        valid: ``True`` at the real tokens (anywhere in the row, not only a prefix).
        token_types: as in :meth:`~qkv.EncoderModel.forward`.

    Shape:
        ``ids (B, T)``, ``valid (B, T)`` bool → ``(B, T, E)``.

    Example:
        >>> import qkv
        >>> model = qkv.EncoderModel(qkv.EncoderModelConfig(vocab_size=20, d_model=16,
        ...     num_heads=2, num_layers=2, d_ff=32, pad_id=0)).eval()
        >>> ids = torch.tensor([[5, 6, 7, 8], [9, 4, 0, 0]])
        >>> valid = ids != 0
        >>> fast = unpadded_hidden_states(model, ids, valid)
        >>> torch.allclose(fast[valid], model(ids)[valid], atol=1e-5), fast[1, 2:].abs().max().item()
        (True, 0.0)
    """
    if not isinstance(valid, Tensor) or valid.dtype != torch.bool or valid.shape != ids.shape:
        raise ValueError(f"valid must be a boolean tensor of the shape of ids "
                         f"{tuple(ids.shape)}, got {valid!r:.60}")
    if encoding_support(model) is not None:
        hidden = model(ids, mask=valid[:, None, None, :], token_types=token_types)
        return hidden.masked_fill(~valid[..., None], 0.0)
    return _encode_unpadded(model, ids, valid, token_types)


def _encode_unpadded(model, ids: Tensor, valid: Tensor, token_types: Tensor | None) -> Tensor:
    # The model's own checks, once (ids, token types, length), through a zero-layer call path.
    from qkv.models.embeddings import check_length, check_token_ids

    check_token_ids("ids", ids, model.config.vocab_size, device=model.embedding.token.weight.device)
    check_length("ids", ids.shape[1], model.config.max_len)
    if token_types is not None:
        model._check_token_types(token_types, ids)
    B, T = ids.shape
    positions = torch.arange(T, device=ids.device)                      # (T,)
    x = model.embedding(ids, positions, token_types)                    # (B, T, E)
    E = x.shape[-1]
    rows = valid.reshape(-1).nonzero().squeeze(1)                       # (N,) flat indices
    x = x.reshape(B * T, E).index_select(0, rows)                       # (N, E)
    # a row with no real token has no key to attend; open it (its queries are not kept anyway)
    keys = (valid | ~valid.any(dim=1, keepdim=True))[:, None, None, :]  # (B, 1, 1, T)
    for layer in model.layers:
        block = _Block(layer)
        x = block.forward(x, lambda h, block=block: _attend_padded(block, h, rows, keys, B, T))
    if model.final_norm is not None:
        x = model.final_norm(x)
    hidden = x.new_zeros(B * T, E).index_copy_(0, rows, x)              # (B·T, E)
    return hidden.view(B, T, E)


def _attend_padded(block: _Block, h: Tensor, rows: Tensor, keys: Tensor, B: int,
                   T: int) -> Tensor:
    """Self-attention of packed tokens ``h (N, E)``: projected, scattered to ``(B, T)``,
    attended with the padding masked as keys, gathered back. Returns the merged heads ``(N, E)``."""
    E, H, Hkv, D = block.E, block.H, block.Hkv, block.D
    projected = block.query_key_value(h)                                # (N, width)
    padded = projected.new_zeros(B * T, block.width).index_copy_(0, rows, projected)
    padded = padded.view(B, T, block.width)
    # contiguous heads: the CPU attention kernel is much faster on them than on strided views
    query = padded[..., :E].view(B, T, H, D).transpose(1, 2).contiguous()           # (B, H, T, D)
    key = padded[..., E:E + Hkv * D].view(B, T, Hkv, D).transpose(1, 2).contiguous()
    value = padded[..., E + Hkv * D:].view(B, T, Hkv, D).transpose(1, 2).contiguous()
    if block.rotary is not None:
        positions = torch.arange(T, device=h.device)
        query, key = block.rotary.rotate(query, positions), block.rotary.rotate(key, positions)
    if Hkv != H:
        key = key.repeat_interleave(H // Hkv, dim=1)                    # (B, H, T, D)
        value = value.repeat_interleave(H // Hkv, dim=1)
    heads = F.scaled_dot_product_attention(query, key, value, attn_mask=keys)   # (B, H, T, D)
    return heads.transpose(1, 2).reshape(B * T, E).index_select(0, rows)       # (N, E)
