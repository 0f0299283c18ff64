"""Bad input to every public entry point, as a table: each row names the call, the input and the
outcome — a ``TypeError`` (a wrong kind or dtype) or ``ValueError`` (a wrong shape or value) whose
message names the argument, or a result of the stated shape, or NaN that propagates to exactly
the rows that read it (never a finite number made from it).

Rows marked ``known`` state the outcome we want but do not have yet (one, in ``interop``): they
are strict xfails, so the table fails the day one of them is fixed and the mark can go.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

import qkv
from qkv import (
    causal_mask,
    combine_masks,
    length_mask,
    mask_from_torch,
    padding_mask,
    scaled_dot_product_attention,
)
from qkv.attention.cache import AttentionCache
from qkv.decoding import greedy
from qkv.decoding.text import generate_texts, translate_texts
from qkv.tokenizers import CharTokenizer, WordTokenizer
from qkv.views import check_document, explore, render_html, save_heatmap
from qkv.views.examples import tiny_document

NAN, INF = float("nan"), float("inf")


# -- what a row expects ------------------------------------------------------------------------

@dataclass(frozen=True)
class Raises:
    error: type[BaseException]
    match: str

    def check(self, call: Callable[[], object]) -> None:
        with pytest.raises(self.error, match=self.match):
            call()


@dataclass(frozen=True)
class Returns:
    """The call returns: tensors of ``shapes`` (``None`` for a ``None`` item), finite unless on
    the meta device; or ``value`` (compared with ``==``); or a result ``test`` accepts."""

    shapes: tuple | None = None
    value: object = ...
    test: Callable[[object], bool] | None = None

    def check(self, call: Callable[[], object]) -> None:
        result = call()
        if self.shapes is not None:
            items = result if isinstance(result, tuple) else (result,)
            assert len(items) == len(self.shapes), result
            for item, shape in zip(items, self.shapes):
                if shape is None:
                    assert item is None
                    continue
                assert tuple(item.shape) == shape, (tuple(item.shape), shape)
                if item.is_floating_point() and item.device.type != "meta":
                    assert torch.isfinite(item).all(), "a finite input gave a non-finite output"
        if self.value is not ...:
            assert result == self.value, result
        if self.test is not None:
            assert self.test(result), result


@dataclass(frozen=True)
class PropagatesNaN:
    """The (first) tensor returned is NaN at ``index`` and finite everywhere else; so are the
    weights, if returned, at ``weights_index`` (default: the same rows; ``None``: nowhere)."""

    index: tuple
    weights_index: tuple | None = ...

    def check(self, call: Callable[[], object]) -> None:
        result = call()
        items = result if isinstance(result, tuple) else (result,)
        weights_index = self.index if self.weights_index is ... else self.weights_index
        for item, index in zip(items, (self.index, weights_index)):
            if item is None:
                continue
            expected = torch.zeros(item.shape, dtype=torch.bool)
            if index is not None:
                expected[index] = True
            assert torch.equal(torch.isnan(item), expected), torch.isnan(item)


@dataclass(frozen=True)
class NaNOrClean:
    """The output is the clean input's output, except where it is NaN: NaN may spread from a
    masked position (documented), but never turns into a different finite number."""

    clean: Callable[[], object]

    def check(self, call: Callable[[], object]) -> None:
        output, clean = call()[0], self.clean()[0]
        assert torch.isfinite(clean).all()
        torch.testing.assert_close(torch.where(torch.isnan(output), clean, output), clean)


@dataclass(frozen=True)
class Case:
    entry: str
    name: str
    call: Callable[[], object]
    expect: Raises | Returns | PropagatesNaN | NaNOrClean
    known: str | None = None            # why a row states an outcome we do not have yet


# -- inputs ------------------------------------------------------------------------------------

def randn(*shape, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape) + 1),
                       dtype=dtype)


Q, K, V = randn(2, 3, 4), randn(2, 5, 4), randn(2, 5, 6)               # (B, T, D), (B, S, ·)
OUT, WEIGHTS = (2, 3, 6), (2, 3, 5)


def with_value(tensor, index, value):
    tensor = tensor.clone()
    tensor[index] = value
    return tensor


def attend(*args, need_weights=False, **kwargs):
    return lambda: scaled_dot_product_attention(*args, need_weights=need_weights, **kwargs)


def paths(entry, name, make_call, expect):
    """The same row on the math path (``need_weights=True``) and the fused one."""
    return [Case(entry, f"{name} [{path}]", make_call(need_weights), expect(need_weights))
            for need_weights, path in ((True, "math"), (False, "fused"))]


def returns_both(output, weights):
    return lambda need_weights: Returns((output, weights if need_weights else None))


SMALL = dict(d_model=8, num_heads=2, num_layers=1, d_ff=16, max_len=6, dropout=0.0)
TEXT = dict(d_model=8, num_heads=2, num_layers=1, d_ff=16, max_len=12, dropout=0.0)


def seeded(build):
    @functools.cache
    def cached():
        torch.manual_seed(0)
        return build().eval()
    return cached


transformer = seeded(lambda: qkv.Transformer(qkv.TransformerConfig(vocab_size=10, **SMALL)))
lm = seeded(lambda: qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=10, **SMALL)))
rotary_lm = seeded(lambda: qkv.LanguageModel(qkv.LanguageModelConfig(
    vocab_size=10, positions="rotary", **SMALL)))
encoder = seeded(lambda: qkv.EncoderModel(qkv.EncoderModelConfig(
    vocab_size=10, positions="learned", type_vocab_size=2, **SMALL)))
classifier = seeded(lambda: qkv.SequenceClassifier(qkv.SequenceClassifierConfig(
    vocab_size=10, labels=["a", "b"], **SMALL)))
mean_classifier = seeded(lambda: qkv.SequenceClassifier(qkv.SequenceClassifierConfig(
    vocab_size=10, labels=["a", "b"], pooling="mean", **SMALL)))
self_attention = seeded(lambda: qkv.MultiHeadAttention(8, 2))
cross_attention = seeded(lambda: qkv.MultiHeadAttention(8, 2, kv_dim=6))
grouped_attention = seeded(lambda: qkv.MultiHeadAttention(8, 4, num_kv_heads=2))
rotary_attention = seeded(lambda: qkv.MultiHeadAttention(8, 2, rotary=qkv.RotaryPositions(4)))


@functools.cache
def chars():
    return CharTokenizer.train(["abc de", "hello"])                    # pad 0, bos 1, eos 2


@functools.cache
def words():
    return WordTokenizer.train(["I love my dog"])


text_transformer = seeded(lambda: qkv.Transformer(qkv.TransformerConfig(
    vocab_size=chars().vocab_size, **TEXT)))
text_lm = seeded(lambda: qkv.LanguageModel(qkv.LanguageModelConfig(
    vocab_size=chars().vocab_size, **TEXT)))
text_classifier = seeded(lambda: qkv.SequenceClassifier(qkv.SequenceClassifierConfig(
    vocab_size=chars().vocab_size, labels=["a", "b"], **TEXT)))
word_lm = seeded(lambda: qkv.LanguageModel(qkv.LanguageModelConfig(
    vocab_size=words().vocab_size, **TEXT)))
word_transformer = seeded(lambda: qkv.Transformer(qkv.TransformerConfig(
    vocab_size=words().vocab_size, **TEXT)))
word_classifier = seeded(lambda: qkv.SequenceClassifier(qkv.SequenceClassifierConfig(
    vocab_size=words().vocab_size, labels=["a", "b"], **TEXT)))


def poisoned(build, parameter):
    """``build()``'s model with NaN in one parameter (as a damaged checkpoint would have)."""
    @functools.cache
    def cached():
        model = build()
        with torch.no_grad():
            getattr_path(model, parameter).fill_(NAN)
        return model.eval()
    return cached


def getattr_path(obj, path):
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


nan_lm = poisoned(lambda: qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=10, **SMALL)),
                  "output_layer.weight")
nan_transformer = poisoned(lambda: qkv.Transformer(qkv.TransformerConfig(vocab_size=10,
                                                                         **SMALL)),
                           "output_layer.weight")
nan_classifier = poisoned(lambda: qkv.SequenceClassifier(qkv.SequenceClassifierConfig(
    vocab_size=chars().vocab_size, labels=["a", "b"], **TEXT)), "classifier.weight")
nan_word_lm = poisoned(lambda: qkv.LanguageModel(qkv.LanguageModelConfig(
    vocab_size=words().vocab_size, **TEXT)), "embedding.token.weight")
nan_word_classifier = poisoned(lambda: qkv.SequenceClassifier(qkv.SequenceClassifierConfig(
    vocab_size=words().vocab_size, labels=["a", "b"], **TEXT)), "classifier.weight")

SRC = torch.tensor([[3, 4, 5, 0], [6, 7, 0, 0]])                       # 0 = padding
TGT = torch.tensor([[1, 3, 4], [1, 5, 0]])
IDS = torch.tensor([[3, 4, 5]])
ENC = torch.tensor([[3, 4, 5, 0]])
SOURCE = torch.tensor([[3, 4, 5, 2], [6, 2, 0, 0]])                    # ends with <eos> = 2
X = randn(2, 3, 8)                                                      # (B, T, E)
MEMORY = randn(2, 5, 6)                                                 # (B, S, kv_dim)
LONG = torch.ones(1, 7, dtype=torch.long)                              # max_len is 6
BOOL = dict(dtype=torch.bool)


def memory():
    return transformer().encode(SRC), transformer().source_mask(SRC)


def decode(tgt=TGT, memory_tensor=None, memory_mask=..., **kwargs):
    def call():
        encoded, source_mask = memory()
        return transformer().decode(tgt, encoded if memory_tensor is None else memory_tensor,
                                    source_mask if memory_mask is ... else memory_mask, **kwargs)
    return call


def enter_twice():
    recording = qkv.trace(lm())
    with recording, recording:
        pass


def cached_steps(model, first, second):
    """``model()(first)`` then ``model()(second)`` on one cache: a batch or length changed
    midway."""
    def call():
        cache = qkv.KVCache()
        model()(first, cache=cache)
        return model()(second, cache=cache)
    return call


def cached_decode(first, second, first_memory_rows=slice(None), second_memory_rows=slice(None)):
    def call():
        encoded, source_mask = memory()
        cache = qkv.KVCache()
        transformer().decode(first, encoded[first_memory_rows], source_mask[first_memory_rows],
                             cache=cache)
        transformer().decode(first, encoded[first_memory_rows], source_mask[first_memory_rows],
                             cache=cache)
        return transformer().decode(second, encoded[second_memory_rows],
                                    source_mask[second_memory_rows], cache=cache)
    return call


def attention_cache_steps(module, first, second, **kwargs):
    def call():
        cache = AttentionCache()
        module()(first, cache=cache, **kwargs)
        return module()(second, cache=cache, **kwargs)
    return call


def traced(model_fn, ids_fn, **selection):
    def call():
        model = model_fn()
        with qkv.trace(model, **selection) as recorded:
            model(ids_fn())
        return recorded.names()
    return call


def a_trace(model_fn=lm, ids=IDS):
    model = model_fn()
    with qkv.trace(model) as recorded:
        model(ids)
    return recorded


def document(mutate):
    doc = tiny_document()
    mutate(doc)
    return doc


def set_weight(value, head=0, row=0, column=0):
    def mutate(doc):
        doc["attentions"][0]["weights"][head][row][column] = value
    return mutate


def set_field(field, value):
    def mutate(doc):
        doc["attentions"][0][field] = value
    return mutate


def folder_with(tmp, name, files):
    path = tmp / name
    path.mkdir(parents=True, exist_ok=True)
    for file, text in files.items():
        (path / file).write_text(text)
    return path


# -- the table ---------------------------------------------------------------------------------

SDPA = "qkv.scaled_dot_product_attention"
FULLY_MASKED_ROW_1 = torch.ones(3, 5, **BOOL).index_fill(0, torch.tensor([1]), False)
KEY_2_MASKED = torch.ones(5, **BOOL).index_fill(0, torch.tensor([2]), False)

CASES: list[Case] = [
    # kinds and dtypes
    Case(SDPA, "query a list", attend([[1.0]], K, V), Raises(TypeError, r"query must be a torch.Tensor, got list")),
    Case(SDPA, "query a numpy array", attend(Q.numpy(), K, V), Raises(TypeError, r"query must be a torch.Tensor, got ndarray")),
    Case(SDPA, "integer query", attend(Q.long(), K, V), Raises(TypeError, r"query must be a floating-point tensor .* got dtype torch.int64")),
    Case(SDPA, "boolean key", attend(Q, K.bool(), V), Raises(TypeError, r"key must be a floating-point tensor .* torch.bool")),
    Case(SDPA, "complex value", attend(Q, K, V.to(torch.complex64)), Raises(TypeError, r"value must be a floating-point tensor .* torch.complex64")),
    Case(SDPA, "float64 key, float32 query", attend(Q, K.double(), V), Raises(TypeError, r"key must have the same dtype as query \(torch.float32\), got torch.float64")),
    Case(SDPA, "bfloat16 value, float32 query", attend(Q, K, V.bfloat16()), Raises(TypeError, r"value must have the same dtype as query")),
    # ranks and shapes
    Case(SDPA, "1-D query", attend(Q[0, 0], K, V), Raises(ValueError, r"query must have at least 2 dimensions \(\.\.\., T, D\), got shape \(4\)")),
    Case(SDPA, "1-D key", attend(Q, K[0, 0], V), Raises(ValueError, r"key must have at least 2 dimensions")),
    Case(SDPA, "0-d value", attend(Q, K, V[0, 0, 0]), Raises(ValueError, r"value must have at least 2 dimensions")),
    Case(SDPA, "head dims differ", attend(Q, K[..., :3], V), Raises(ValueError, r"query and key must have the same head dim D")),
    Case(SDPA, "key and value lengths differ", attend(Q, K, V[:, :4]), Raises(ValueError, r"key and value must have the same number of positions S")),
    Case(SDPA, "leading dims do not broadcast", attend(Q, randn(3, 5, 4), randn(3, 5, 6)), Raises(ValueError, r"leading \(batch\) dimensions do not broadcast: query \(2\), key \(3\), value \(3\)")),
    Case(SDPA, "D = 0", attend(Q[..., :0], K[..., :0], V), Raises(ValueError, r"query must have a head dim D > 0")),
    # devices
    Case(SDPA, "key on meta, query on cpu", attend(Q, K.to("meta"), V), Raises(ValueError, r"key is on meta but query is on cpu")),
    Case(SDPA, "mask on meta, query on cpu", attend(Q, K, V, torch.ones(3, 5, **BOOL, device="meta")), Raises(ValueError, r"mask is on meta but query is on cpu")),
    *paths(SDPA, "all on meta", lambda nw: attend(Q.to("meta"), K.to("meta"), V.to("meta"), need_weights=nw), returns_both(OUT, WEIGHTS)),
    # masks
    Case(SDPA, "integer mask", attend(Q, K, V, torch.ones(3, 5, dtype=torch.long)), Raises(TypeError, r"mask must be boolean \(True = may attend\) or floating .* torch.int64")),
    Case(SDPA, "uint8 mask", attend(Q, K, V, torch.ones(3, 5, dtype=torch.uint8)), Raises(TypeError, r"mask must be boolean .* torch.uint8")),
    Case(SDPA, "mask a list", attend(Q, K, V, [[True]]), Raises(TypeError, r"mask must be a torch.Tensor, got list")),
    Case(SDPA, "mask (T, S+1)", attend(Q, K, V, torch.ones(3, 6, **BOOL)), Raises(ValueError, r"mask of shape \(3, 6\) does not broadcast to the scores' shape \(\.\.\., T, S\) = \(2, 3, 5\)")),
    Case(SDPA, "mask (T,) instead of (S,)", attend(Q, K, V, torch.ones(3, **BOOL)), Raises(ValueError, r"mask of shape \(3\) does not broadcast")),
    Case(SDPA, "mask with an extra leading dim", attend(Q, K, V, torch.ones(4, 2, 3, 5, **BOOL)), Raises(ValueError, r"mask of shape \(4, 2, 3, 5\) does not broadcast")),
    *paths(SDPA, "float64 mask on float32 inputs", lambda nw: attend(Q, K, V, torch.zeros(3, 5, dtype=torch.float64), need_weights=nw), returns_both(OUT, WEIGHTS)),
    *paths(SDPA, "0-d boolean mask", lambda nw: attend(Q, K, V, torch.tensor(True), need_weights=nw), returns_both(OUT, WEIGHTS)),
    # arguments
    Case(SDPA, "scale a str", attend(Q, K, V, scale="0.5"), Raises(TypeError, r"scale must be a real number or None, got str")),
    Case(SDPA, "scale a tensor", attend(Q, K, V, scale=torch.tensor(0.5)), Raises(TypeError, r"scale must be a real number or None, got Tensor")),
    Case(SDPA, "scale NaN", attend(Q, K, V, scale=NAN), Raises(ValueError, r"scale must be finite, got nan")),
    Case(SDPA, "scale inf", attend(Q, K, V, scale=INF), Raises(ValueError, r"scale must be finite, got inf")),
    Case(SDPA, "dropout_p 1", attend(Q, K, V, dropout_p=1.0), Raises(ValueError, r"dropout_p must be in \[0, 1\), got 1.0")),
    Case(SDPA, "dropout_p negative", attend(Q, K, V, dropout_p=-0.1), Raises(ValueError, r"dropout_p must be in \[0, 1\), got -0.1")),
    Case(SDPA, "dropout_p a str", attend(Q, K, V, dropout_p="0"), Raises(TypeError, r"dropout_p must be a number in \[0, 1\), got str")),
    Case(SDPA, "causal an int", attend(Q, K, V, causal=1), Raises(TypeError, r"causal must be True or False, got int 1")),
    Case(SDPA, "need_weights a str", lambda: scaled_dot_product_attention(Q, K, V, need_weights="yes"), Raises(TypeError, r"need_weights must be True or False, got str")),
    # empty sizes: empty outputs of the right shape; S = 0 reads nothing, so zeros
    *paths(SDPA, "T = 0", lambda nw: attend(Q[:, :0], K, V, need_weights=nw), returns_both((2, 0, 6), (2, 0, 5))),
    *paths(SDPA, "B = 0", lambda nw: attend(Q[:0], K[:0], V[:0], need_weights=nw), returns_both((0, 3, 6), (0, 3, 5))),
    *paths(SDPA, "Dv = 0", lambda nw: attend(Q, K, V[..., :0], need_weights=nw), returns_both((2, 3, 0), WEIGHTS)),
    *paths(SDPA, "S = 0 gives zeros", lambda nw: attend(Q, K[:, :0], V[:, :0], need_weights=nw), lambda nw: Returns(test=lambda r: r[0].shape == OUT and not r[0].any())),
    *paths(SDPA, "S = 0, causal, gives zeros", lambda nw: attend(Q, K[:, :0], V[:, :0], causal=True, need_weights=nw), lambda nw: Returns(test=lambda r: r[0].shape == OUT and not r[0].any())),
    # non-finite values propagate to exactly the rows that read them
    *paths(SDPA, "NaN in query row 1", lambda nw: attend(with_value(Q, (slice(None), 1), NAN), K, V, need_weights=nw), lambda nw: PropagatesNaN((slice(None), 1))),
    *paths(SDPA, "+inf in query row 1", lambda nw: attend(with_value(Q, (slice(None), 1), INF), torch.tensor([[1.0, -1.0, 0.5, 0.5]]).expand(2, 5, 4), V, need_weights=nw), lambda nw: PropagatesNaN((slice(None), 1))),
    *paths(SDPA, "NaN in an attended key of batch 0", lambda nw: attend(Q, with_value(K, (0, 2), NAN), V, need_weights=nw), lambda nw: PropagatesNaN((0,))),
    *paths(SDPA, "NaN in an attended value of batch 0", lambda nw: attend(Q, K, with_value(V, (0, 2), NAN), need_weights=nw), lambda nw: PropagatesNaN((0,), weights_index=None)),
    *paths(SDPA, "NaN in a float mask entry of row 1", lambda nw: attend(Q, K, V, with_value(torch.zeros(3, 5), (1, 2), NAN), need_weights=nw), lambda nw: PropagatesNaN((slice(None), 1))),
    *paths(SDPA, "+inf in a float mask entry of row 1", lambda nw: attend(Q, K, V, with_value(torch.zeros(3, 5), (1, 2), INF), need_weights=nw), lambda nw: PropagatesNaN((slice(None), 1))),
    *paths(SDPA, "NaN queries, row 1 fully masked: zeros there", lambda nw: attend(torch.full_like(Q, NAN), K, V, FULLY_MASKED_ROW_1, need_weights=nw), lambda nw: PropagatesNaN((slice(None), [0, 2]))),
    *paths(SDPA, "NaN in a masked key: NaN or the clean answer", lambda nw: attend(Q, with_value(K, (0, 2), NAN), V, KEY_2_MASKED, need_weights=nw), lambda nw: NaNOrClean(attend(Q, K, V, KEY_2_MASKED))),
    *paths(SDPA, "NaN in a masked value: NaN or the clean answer", lambda nw: attend(Q, K, with_value(V, (0, 2), NAN), KEY_2_MASKED, need_weights=nw), lambda nw: NaNOrClean(attend(Q, K, V, KEY_2_MASKED))),

    # -- masks
    Case("qkv.padding_mask", "float ids", lambda: padding_mask(SRC.float(), 0), Raises(TypeError, r"ids must be an integer tensor of token ids, got dtype torch.float32")),
    Case("qkv.padding_mask", "boolean ids", lambda: padding_mask(SRC.bool(), 0), Raises(TypeError, r"ids must be an integer tensor .* torch.bool")),
    Case("qkv.padding_mask", "ids a list", lambda: padding_mask([[1, 0]], 0), Raises(TypeError, r"ids must be a torch.Tensor, got list")),
    Case("qkv.padding_mask", "1-D ids", lambda: padding_mask(SRC[0], 0), Raises(ValueError, r"ids must have shape \(B, S\), got \(4\)")),
    Case("qkv.padding_mask", "3-D ids", lambda: padding_mask(SRC[None], 0), Raises(ValueError, r"ids must have shape \(B, S\), got \(1, 2, 4\)")),
    Case("qkv.padding_mask", "pad_id None", lambda: padding_mask(SRC, None), Raises(TypeError, r"pad_id must be an int \(a token id\), got NoneType")),
    Case("qkv.padding_mask", "pad_id a str", lambda: padding_mask(SRC, "0"), Raises(TypeError, r"pad_id must be an int .* got str '0'")),
    Case("qkv.padding_mask", "pad_id a float", lambda: padding_mask(SRC, 0.5), Raises(TypeError, r"pad_id must be an int .* got float 0.5")),
    Case("qkv.padding_mask", "pad_id a bool", lambda: padding_mask(SRC, False), Raises(TypeError, r"pad_id must be an int .* got bool")),
    Case("qkv.padding_mask", "B = 0", lambda: padding_mask(SRC[:0], 0), Returns(((0, 1, 1, 4),))),
    Case("qkv.padding_mask", "S = 0", lambda: padding_mask(SRC[:, :0], 0), Returns(((2, 1, 1, 0),))),
    Case("qkv.padding_mask", "ids on meta", lambda: padding_mask(SRC.to("meta"), 0), Returns(((2, 1, 1, 4),))),
    Case("qkv.length_mask", "float lengths", lambda: length_mask(torch.tensor([1.0])), Raises(TypeError, r"lengths must be an integer tensor, got dtype torch.float32")),
    Case("qkv.length_mask", "boolean lengths", lambda: length_mask(torch.tensor([True])), Raises(TypeError, r"lengths must be an integer tensor, got dtype torch.bool")),
    Case("qkv.length_mask", "lengths a list", lambda: length_mask([1, 2]), Raises(TypeError, r"lengths must be a torch.Tensor, got list")),
    Case("qkv.length_mask", "2-D lengths", lambda: length_mask(torch.tensor([[1]])), Raises(ValueError, r"lengths must have shape \(B,\), got \(1, 1\)")),
    Case("qkv.length_mask", "0-d lengths", lambda: length_mask(torch.tensor(1)), Raises(ValueError, r"lengths must have shape \(B,\), got \(\)")),
    Case("qkv.length_mask", "negative length", lambda: length_mask(torch.tensor([2, -1])), Raises(ValueError, r"lengths must be >= 0, got \[2, -1\]")),
    Case("qkv.length_mask", "max_len below the longest", lambda: length_mask(torch.tensor([3]), max_len=2), Raises(ValueError, r"max_len=2 is shorter than the longest length 3")),
    Case("qkv.length_mask", "max_len a float", lambda: length_mask(torch.tensor([3]), max_len=3.0), Raises(TypeError, r"max_len must be an integer, got float 3.0")),
    Case("qkv.length_mask", "max_len negative", lambda: length_mask(torch.tensor([0]), max_len=-1), Raises(ValueError, r"max_len must be >= 0, got -1")),
    Case("qkv.length_mask", "B = 0", lambda: length_mask(torch.tensor([], dtype=torch.long)), Returns(((0, 1, 1, 0),))),
    Case("qkv.length_mask", "B = 0 with max_len", lambda: length_mask(torch.tensor([], dtype=torch.long), max_len=4), Returns(((0, 1, 1, 4),))),
    Case("qkv.length_mask", "meta lengths without max_len", lambda: length_mask(torch.tensor([1, 2], device="meta")), Raises(ValueError, r"lengths on the meta device have no values .* pass max_len")),
    Case("qkv.length_mask", "meta lengths with max_len", lambda: length_mask(torch.tensor([1, 2], device="meta"), max_len=3), Returns(((2, 1, 1, 3),))),
    Case("qkv.causal_mask", "T a float", lambda: causal_mask(2.0), Raises(TypeError, r"T must be an integer, got float 2.0")),
    Case("qkv.causal_mask", "T a bool", lambda: causal_mask(True), Raises(TypeError, r"T must be an integer, got bool True")),
    Case("qkv.causal_mask", "T a tensor", lambda: causal_mask(torch.tensor(3)), Raises(TypeError, r"T must be an integer, got Tensor")),
    Case("qkv.causal_mask", "T negative", lambda: causal_mask(-1), Raises(ValueError, r"T must be >= 0, got -1")),
    Case("qkv.causal_mask", "S negative", lambda: causal_mask(2, -1), Raises(ValueError, r"S must be >= 0, got -1")),
    Case("qkv.causal_mask", "T = 0", lambda: causal_mask(0), Returns(((0, 0),))),
    Case("qkv.causal_mask", "S = 0", lambda: causal_mask(2, 0), Returns(((2, 0),))),
    Case("qkv.causal_mask", "T > S: early queries see nothing (bottom-right)", lambda: causal_mask(3, 2).tolist(), Returns(value=[[False, False], [True, False], [True, True]])),
    Case("qkv.causal_mask", "device meta", lambda: causal_mask(3, device="meta"), Returns(((3, 3),))),
    Case("qkv.causal_mask", "device unknown (torch's error)", lambda: causal_mask(3, device="bogus"), Raises(RuntimeError, r"device type at start of device string: bogus")),
    Case("qkv.combine_masks", "a float mask", lambda: combine_masks(torch.zeros(2, 2)), Raises(TypeError, r"combine_masks takes boolean masks, masks\[0\] has dtype torch.float32")),
    Case("qkv.combine_masks", "an integer mask second", lambda: combine_masks(None, torch.ones(2, 2, dtype=torch.long)), Raises(TypeError, r"masks\[1\] has dtype torch.int64")),
    Case("qkv.combine_masks", "a list", lambda: combine_masks([[True]]), Raises(TypeError, r"masks\[0\] must be a torch.Tensor, got list")),
    Case("qkv.combine_masks", "shapes that do not broadcast", lambda: combine_masks(torch.ones(2, 3, **BOOL), torch.ones(3, 2, **BOOL)), Raises(ValueError, r"masks do not broadcast together: \(2, 3\), \(3, 2\)")),
    Case("qkv.combine_masks", "masks on two devices", lambda: combine_masks(torch.ones(2, 2, **BOOL), torch.ones(2, 2, **BOOL, device="meta")), Raises(ValueError, r"masks must be on one device: masks\[1\] is on meta but the first mask is on cpu")),
    Case("qkv.combine_masks", "only None", lambda: combine_masks(None, None), Returns(value=None)),
    Case("qkv.combine_masks", "nothing", lambda: combine_masks(), Returns(value=None)),
    Case("qkv.combine_masks", "a zero-size mask", lambda: combine_masks(torch.ones(0, 2, **BOOL), torch.ones(1, 2, **BOOL)), Returns(((0, 2),))),
    Case("qkv.mask_from_torch", "integer key_padding_mask", lambda: mask_from_torch(torch.zeros(1, 3, dtype=torch.long)), Raises(TypeError, r"key_padding_mask must be boolean \(True = masked out\) or float, got torch.int64")),
    Case("qkv.mask_from_torch", "key_padding_mask a list", lambda: mask_from_torch([[True]]), Raises(TypeError, r"key_padding_mask must be a torch.Tensor, got list")),
    Case("qkv.mask_from_torch", "1-D key_padding_mask", lambda: mask_from_torch(torch.zeros(3, **BOOL)), Raises(ValueError, r"key_padding_mask must have shape \(B, S\), got \(3\)")),
    Case("qkv.mask_from_torch", "3-D key_padding_mask", lambda: mask_from_torch(torch.zeros(1, 1, 3, **BOOL)), Raises(ValueError, r"key_padding_mask must have shape \(B, S\), got \(1, 1, 3\)")),
    Case("qkv.mask_from_torch", "3-D attn_mask without num_heads", lambda: mask_from_torch(attn_mask=torch.zeros(4, 3, 3, **BOOL)), Raises(ValueError, r"needs num_heads to unflatten it")),
    Case("qkv.mask_from_torch", "3-D attn_mask, num_heads not dividing B·H", lambda: mask_from_torch(attn_mask=torch.zeros(4, 3, 3, **BOOL), num_heads=3), Raises(ValueError, r"4 is not a multiple of 3")),
    Case("qkv.mask_from_torch", "num_heads a float", lambda: mask_from_torch(attn_mask=torch.zeros(4, 3, 3, **BOOL), num_heads=2.0), Raises(TypeError, r"num_heads must be an integer, got float")),
    Case("qkv.mask_from_torch", "num_heads 0", lambda: mask_from_torch(attn_mask=torch.zeros(4, 3, 3, **BOOL), num_heads=0), Raises(ValueError, r"num_heads must be >= 1, got 0")),
    Case("qkv.mask_from_torch", "1-D attn_mask", lambda: mask_from_torch(attn_mask=torch.zeros(3, **BOOL)), Raises(ValueError, r"attn_mask must have shape \(T, S\) or \(B·H, T, S\), got \(3\)")),
    Case("qkv.mask_from_torch", "4-D attn_mask", lambda: mask_from_torch(attn_mask=torch.zeros(1, 1, 3, 3, **BOOL)), Raises(ValueError, r"got \(1, 1, 3, 3\)")),
    Case("qkv.mask_from_torch", "boolean masks of different S", lambda: mask_from_torch(torch.zeros(1, 3, **BOOL), torch.zeros(3, 4, **BOOL)), Raises(ValueError, r"masks do not broadcast together")),
    Case("qkv.mask_from_torch", "float masks of different S", lambda: mask_from_torch(torch.zeros(1, 4), torch.zeros(3, 3)), Raises(ValueError, r"do not broadcast"), known="interop/torch_nn.py adds the two float masks unchecked: torch's RuntimeError"),
    Case("qkv.mask_from_torch", "NaN in a float attn_mask is kept (added to the scores)", lambda: mask_from_torch(attn_mask=with_value(torch.zeros(3, 3), (1, 1), NAN)), PropagatesNaN((1, 1))),

    # -- multi-head attention
    Case("MultiHeadAttention(...)", "d_model not divisible by num_heads", lambda: qkv.MultiHeadAttention(10, 4), Raises(ValueError, r"d_model \(10\) must be divisible by num_heads \(4\)")),
    Case("MultiHeadAttention(...)", "num_kv_heads not dividing num_heads", lambda: qkv.MultiHeadAttention(8, 4, num_kv_heads=3), Raises(ValueError, r"num_kv_heads \(3\) must divide num_heads \(4\)")),
    Case("MultiHeadAttention(...)", "d_model a float", lambda: qkv.MultiHeadAttention(8.0, 2), Raises(TypeError, r"d_model must be an integer, got float")),
    Case("MultiHeadAttention(...)", "num_heads 0", lambda: qkv.MultiHeadAttention(8, 0), Raises(ValueError, r"num_heads must be >= 1, got 0")),
    Case("MultiHeadAttention(...)", "dropout 1", lambda: qkv.MultiHeadAttention(8, 2, dropout=1.0), Raises(ValueError, r"dropout must be in \[0, 1\), got 1.0")),
    Case("MultiHeadAttention self", "query a list", lambda: self_attention()([[1.0]]), Raises(TypeError, r"query must be a torch.Tensor, got list")),
    Case("MultiHeadAttention self", "integer query", lambda: self_attention()(X.long()), Raises(TypeError, r"query must be a floating-point tensor .* torch.int64")),
    Case("MultiHeadAttention self", "boolean query", lambda: self_attention()(X.bool()), Raises(TypeError, r"query must be a floating-point tensor .* torch.bool")),
    Case("MultiHeadAttention self", "float64 query, float32 module", lambda: self_attention()(X.double()), Raises(TypeError, r"query must have the dtype of the module's parameters \(torch.float32\), got torch.float64")),
    Case("MultiHeadAttention self", "bfloat16 query, float32 module", lambda: self_attention()(X.bfloat16()), Raises(TypeError, r"query must have the dtype of the module's parameters .* torch.bfloat16")),
    Case("MultiHeadAttention self", "2-D query", lambda: self_attention()(X[0]), Raises(ValueError, r"query must have shape \(B, T, E\) with last dim 8, got \(3, 8\)")),
    Case("MultiHeadAttention self", "4-D query", lambda: self_attention()(X[None]), Raises(ValueError, r"query must have shape \(B, T, E\) with last dim 8, got \(1, 2, 3, 8\)")),
    Case("MultiHeadAttention self", "E of 6, not 8", lambda: self_attention()(X[..., :6]), Raises(ValueError, r"with last dim 8, got \(2, 3, 6\)")),
    Case("MultiHeadAttention self", "query on meta, module on cpu", lambda: self_attention()(X.to("meta")), Raises(ValueError, r"query is on meta but the module's parameters are on cpu")),
    Case("MultiHeadAttention self", "T = 0", lambda: self_attention()(X[:, :0], need_weights=True), Returns(((2, 0, 8), (2, 2, 0, 0)))),
    Case("MultiHeadAttention self", "B = 0", lambda: self_attention()(X[:0], need_weights=True), Returns(((0, 3, 8), (0, 2, 3, 3)))),
    Case("MultiHeadAttention self", "NaN at one position of batch 0 (every key reads it)", lambda: self_attention()(with_value(X, (0, 1), NAN)), PropagatesNaN((0,))),
    Case("MultiHeadAttention self", "integer mask", lambda: self_attention()(X, mask=torch.ones(3, 3, dtype=torch.long)), Raises(TypeError, r"mask must be boolean .* torch.int64")),
    Case("MultiHeadAttention self", "mask a list", lambda: self_attention()(X, mask=[[True]]), Raises(TypeError, r"mask must be a torch.Tensor, got list")),
    Case("MultiHeadAttention self", "mask (T, S+1)", lambda: self_attention()(X, mask=torch.ones(3, 4, **BOOL)), Raises(ValueError, r"mask of shape \(3, 4\) does not broadcast to \(B, H, T, S\) = \(2, 2, 3, 3\)")),
    Case("MultiHeadAttention self", "PyTorch-style (B·H, T, S) mask", lambda: self_attention()(X, mask=torch.ones(4, 3, 3, **BOOL)), Raises(ValueError, r"use qkv.mask_from_torch\(attn_mask=mask, num_heads=2\)")),
    Case("MultiHeadAttention self", "5-D mask", lambda: self_attention()(X, mask=torch.ones(1, 2, 2, 3, 3, **BOOL)), Raises(ValueError, r"mask of shape \(1, 2, 2, 3, 3\) does not broadcast")),
    Case("MultiHeadAttention self", "causal None", lambda: self_attention()(X, causal=None), Raises(TypeError, r"causal must be True or False, got NoneType")),
    Case("MultiHeadAttention self", "need_weights 1", lambda: self_attention()(X, need_weights=1), Raises(TypeError, r"need_weights must be True or False, got int 1")),
    Case("MultiHeadAttention cross", "S = 0: reads nothing", lambda: cross_attention()(X, MEMORY[:, :0], need_weights=True), Returns(((2, 3, 8), (2, 2, 3, 0)))),
    Case("MultiHeadAttention cross", "key of width 8, kv_dim 6", lambda: cross_attention()(X, randn(2, 5, 8)), Raises(ValueError, r"key must have shape \(B, S, kv_dim\) with last dim 6, got \(2, 5, 8\)")),
    Case("MultiHeadAttention cross", "key of another batch size", lambda: cross_attention()(X, MEMORY[:1]), Raises(ValueError, r"query, key and value must have the same batch size B")),
    Case("MultiHeadAttention cross", "value shorter than key", lambda: cross_attention()(X, MEMORY, MEMORY[:, :4]), Raises(ValueError, r"key and value must have the same number of positions S")),
    Case("MultiHeadAttention cross", "integer key", lambda: cross_attention()(X, MEMORY.long()), Raises(TypeError, r"key must be a floating-point tensor")),
    Case("MultiHeadAttention cross", "float64 key", lambda: cross_attention()(X, MEMORY.double()), Raises(TypeError, r"key must have the dtype of the module's parameters")),
    Case("MultiHeadAttention cross", "key on meta", lambda: cross_attention()(X, MEMORY.to("meta")), Raises(ValueError, r"key is on meta but the module's parameters are on cpu")),
    Case("MultiHeadAttention cross", "rotary positions on cross-attention", lambda: rotary_attention()(X, X), Raises(ValueError, r"rotary positions apply to self-attention only")),
    Case("MultiHeadAttention GQA", "4 query heads on 2 key/value heads", lambda: grouped_attention()(X, need_weights=True), Returns(((2, 3, 8), (2, 4, 3, 3)))),
    Case("MultiHeadAttention GQA", "T = 0", lambda: grouped_attention()(X[:, :0], need_weights=True), Returns(((2, 0, 8), (2, 4, 0, 0)))),
    Case("MultiHeadAttention GQA", "mask for 2 heads of 4", lambda: grouped_attention()(X, mask=torch.ones(2, 2, 3, 3, **BOOL)), Raises(ValueError, r"does not broadcast to \(B, H, T, S\) = \(2, 4, 3, 3\)")),
    Case("MultiHeadAttention cache", "cache a str", lambda: self_attention()(X, cache="cache"), Raises(TypeError, r"cache must be an AttentionCache or None, got str")),
    Case("MultiHeadAttention cache", "a static cache for self-attention", lambda: self_attention()(X, cache=AttentionCache(static=True)), Raises(ValueError, r"self-attention needs a growing cache")),
    Case("MultiHeadAttention cache", "a growing cache for cross-attention", lambda: cross_attention()(X, MEMORY, cache=AttentionCache()), Raises(ValueError, r"cross-attention a static one")),
    Case("MultiHeadAttention cache", "batch size changes midway", attention_cache_steps(self_attention, X, X[:1]), Raises(ValueError, r"the cache holds 2 sequences but query has batch size 1")),
    Case("MultiHeadAttention cache", "one causal step after 3 cached", attention_cache_steps(self_attention, X, X[:, :1], causal=True, need_weights=True), Returns(((2, 1, 8), (2, 2, 1, 4)))),
    Case("MultiHeadAttention cache", "float positions (rotary)", lambda: rotary_attention()(X, positions=torch.arange(3.0)), Raises(TypeError, r"positions must be an integer tensor, got dtype torch.float32")),
    Case("MultiHeadAttention cache", "positions of length 4 for T = 3 (rotary)", lambda: rotary_attention()(X, positions=torch.arange(4)), Raises(ValueError, r"positions must have shape \(T,\) = \(3,\) or \(B, T\) = \(2, 3\), got \(4\)")),
    Case("MultiHeadAttention cache", "positions a list (rotary)", lambda: rotary_attention()(X, positions=[0, 1, 2]), Raises(TypeError, r"positions must be a torch.Tensor, got list")),

    # -- models
    Case("Transformer", "float src", lambda: transformer()(SRC.float(), TGT), Raises(TypeError, r"src must be an integer tensor of token ids, got dtype torch.float32")),
    Case("Transformer", "boolean tgt", lambda: transformer()(SRC, TGT.bool()), Raises(TypeError, r"tgt must be an integer tensor of token ids, got dtype torch.bool")),
    Case("Transformer", "src a list", lambda: transformer()([[3, 4]], TGT), Raises(TypeError, r"src must be a torch.Tensor, got list")),
    Case("Transformer", "1-D src", lambda: transformer()(SRC[0], TGT), Raises(ValueError, r"src must have shape \(B, T\), got \(4\)")),
    Case("Transformer", "3-D tgt", lambda: transformer()(SRC, TGT[None]), Raises(ValueError, r"tgt must have shape \(B, T\), got \(1, 2, 3\)")),
    Case("Transformer", "src ids >= vocab_size", lambda: transformer()(SRC + 10, TGT), Raises(ValueError, r"src must lie in \[0, vocab_size\) = \[0, 10\), got ids from 10 to 17")),
    Case("Transformer", "negative tgt ids", lambda: transformer()(SRC, TGT - 5), Raises(ValueError, r"tgt must lie in \[0, vocab_size\) = \[0, 10\), got ids from -5 to 0")),
    Case("Transformer", "src over max_len", lambda: transformer()(LONG, TGT[:1]), Raises(ValueError, r"src has 7 positions, more than the model's max_len = 6")),
    Case("Transformer", "tgt over max_len", lambda: transformer()(SRC[:1], LONG), Raises(ValueError, r"tgt has 7 positions, more than the model's max_len = 6")),
    Case("Transformer", "src and tgt batch sizes differ", lambda: transformer()(SRC, TGT[:1]), Raises(ValueError, r"src and tgt must have the same batch size B: got src \(2, 4\), tgt \(1, 3\)")),
    Case("Transformer", "src on meta, model on cpu", lambda: transformer()(SRC.to("meta"), TGT.to("meta")), Raises(ValueError, r"src is on meta but the model is on cpu")),
    Case("Transformer", "B = 0", lambda: transformer()(SRC[:0], TGT[:0]), Returns(((0, 3, 10),))),
    Case("Transformer", "S = 0 (cross-attention reads nothing)", lambda: transformer()(SRC[:, :0], TGT), Returns(((2, 3, 10),))),
    Case("Transformer", "T = 0", lambda: transformer()(SRC, TGT[:, :0]), Returns(((2, 0, 10),))),
    Case("Transformer", "a source of padding only", lambda: transformer()(torch.zeros(1, 3, dtype=torch.long), TGT[:1]), Returns(((1, 3, 10),))),
    Case("Transformer.encode", "float src", lambda: transformer().encode(SRC.float()), Raises(TypeError, r"src must be an integer tensor")),
    Case("Transformer.encode", "src over max_len", lambda: transformer().encode(LONG), Raises(ValueError, r"src has 7 positions, more than the model's max_len = 6")),
    Case("Transformer.encode", "integer src_mask", lambda: transformer().encode(SRC, torch.ones(2, 1, 1, 4, dtype=torch.long)), Raises(TypeError, r"mask must be boolean .* torch.int64")),
    Case("Transformer.encode", "src_mask for S = 3, not 4", lambda: transformer().encode(SRC, torch.ones(2, 1, 1, 3, **BOOL)), Raises(ValueError, r"mask of shape \(2, 1, 1, 3\) does not broadcast to \(B, H, T, S\) = \(2, 2, 4, 4\)")),
    Case("Transformer.encode", "src_mask a list", lambda: transformer().encode(SRC, [[True]]), Raises(TypeError, r"mask must be a torch.Tensor, got list")),
    Case("Transformer.encode", "a float (additive) src_mask", lambda: transformer().encode(SRC, torch.zeros(2, 1, 1, 4)), Returns(((2, 4, 8),))),
    Case("Transformer.decode", "no memory_mask with a pad id", decode(memory_mask=None), Raises(ValueError, r"decode needs memory_mask, the source padding mask")),
    Case("Transformer.decode", "memory a list", decode(memory_tensor=[[1.0]]), Raises(TypeError, r"memory must be a torch.Tensor, got list")),
    Case("Transformer.decode", "integer memory", decode(memory_tensor=torch.ones(2, 4, 8, dtype=torch.long)), Raises(TypeError, r"memory must be a floating-point tensor")),
    Case("Transformer.decode", "float64 memory", decode(memory_tensor=randn(2, 4, 8, dtype=torch.float64)), Raises(TypeError, r"memory must have the model's dtype \(torch.float32\), got torch.float64")),
    Case("Transformer.decode", "2-D memory", decode(memory_tensor=randn(4, 8)), Raises(ValueError, r"memory must have shape \(B, S, E\) with E = d_model = 8 .* got \(4, 8\)")),
    Case("Transformer.decode", "memory of width 4", decode(memory_tensor=randn(2, 4, 4)), Raises(ValueError, r"memory must have shape \(B, S, E\) with E = d_model = 8 .* got \(2, 4, 4\)")),
    Case("Transformer.decode", "memory of another batch size", decode(memory_tensor=randn(1, 4, 8)), Raises(ValueError, r"memory and tgt must have the same batch size B: got memory \(1, 4, 8\), tgt \(2, 3\)")),
    Case("Transformer.decode", "memory on meta", decode(memory_tensor=randn(2, 4, 8).to("meta")), Raises(ValueError, r"memory is on meta but the model is on cpu")),
    Case("Transformer.decode", "memory_mask for S = 3, not 4", decode(memory_mask=torch.ones(2, 1, 1, 3, **BOOL)), Raises(ValueError, r"mask of shape \(2, 1, 1, 3\) does not broadcast to \(B, H, T, S\) = \(2, 2, 3, 4\)")),
    Case("Transformer.decode", "NaN in batch 0 of memory", decode(memory_tensor=with_value(randn(2, 4, 8), (0, 1), NAN)), PropagatesNaN((0,))),
    Case("Transformer.decode", "cache an object", decode(cache=object()), Raises(TypeError, r"cache must be a qkv.KVCache or None, got object")),
    Case("Transformer.decode", "a step past max_len on the cache", cached_decode(TGT, TGT[:, :1]), Raises(ValueError, r"tgt has 1 positions after 6 cached ones, more than the model's max_len = 6")),
    Case("Transformer.decode", "batch size changes on the cache", cached_decode(TGT[:, :1], TGT[:1, :1], slice(None), slice(0, 1)), Raises(ValueError, r"the cache holds 2 sequences but this call has batch size 1")),
    Case("LanguageModel", "float ids", lambda: lm()(IDS.float()), Raises(TypeError, r"ids must be an integer tensor of token ids, got dtype torch.float32")),
    Case("LanguageModel", "1-D ids", lambda: lm()(IDS[0]), Raises(ValueError, r"ids must have shape \(B, T\), got \(3\)")),
    Case("LanguageModel", "ids >= vocab_size", lambda: lm()(IDS + 7), Raises(ValueError, r"ids must lie in \[0, vocab_size\) = \[0, 10\), got ids from 10 to 12")),
    Case("LanguageModel", "negative ids", lambda: lm()(-IDS), Raises(ValueError, r"ids must lie in \[0, vocab_size\) = \[0, 10\), got ids from -5 to -3")),
    Case("LanguageModel", "over max_len", lambda: lm()(LONG), Raises(ValueError, r"ids has 7 positions, more than the model's max_len = 6")),
    Case("LanguageModel", "over max_len, rotary (no table, same limit)", lambda: rotary_lm()(LONG), Raises(ValueError, r"ids has 7 positions, more than the model's max_len = 6")),
    Case("LanguageModel", "over max_len on the cache", cached_steps(lm, torch.ones(1, 4, dtype=torch.long), torch.ones(1, 3, dtype=torch.long)), Raises(ValueError, r"ids has 3 positions after 4 cached ones, more than the model's max_len = 6")),
    Case("LanguageModel", "ids on meta", lambda: lm()(IDS.to("meta")), Raises(ValueError, r"ids is on meta but the model is on cpu")),
    Case("LanguageModel", "T = 0", lambda: lm()(IDS[:, :0]), Returns(((1, 0, 10),))),
    Case("LanguageModel", "B = 0", lambda: lm()(IDS[:0]), Returns(((0, 3, 10),))),
    Case("LanguageModel", "float positions", lambda: lm()(IDS, positions=torch.arange(3.0)), Raises(TypeError, r"positions must be an integer tensor, got dtype torch.float32")),
    Case("LanguageModel", "positions a list", lambda: lm()(IDS, positions=[0, 1, 2]), Raises(TypeError, r"positions must be a torch.Tensor, got list")),
    Case("LanguageModel", "negative positions (table)", lambda: lm()(IDS, positions=-torch.arange(3)), Raises(ValueError, r"positions must lie in \[0, max_len\) = \[0, 6\), got values from -2 to 0: .* or a negative position")),
    Case("LanguageModel", "positions past max_len (table)", lambda: lm()(IDS, positions=torch.arange(3) + 5), Raises(ValueError, r"positions must lie in \[0, max_len\) = \[0, 6\), got values from 5 to 7")),
    Case("LanguageModel", "positions past max_len (rotary: no table)", lambda: rotary_lm()(IDS, positions=torch.arange(3) + 5), Returns(((1, 3, 10),))),
    Case("LanguageModel", "positions of length 4 for T = 3", lambda: lm()(IDS, positions=torch.arange(4)), Raises(ValueError, r"positions must have shape \(T,\) = \(3,\) or \(B, T\) = \(1, 3\) for ids \(1, 3\), got \(4\)")),
    Case("LanguageModel", "positions (2, T) for B = 1", lambda: lm()(IDS, positions=torch.zeros(2, 3, dtype=torch.long)), Raises(ValueError, r"positions must have shape .* got \(2, 3\)")),
    Case("LanguageModel", "3-D positions", lambda: lm()(IDS, positions=torch.arange(3)[None, None]), Raises(ValueError, r"got \(1, 1, 3\)")),
    Case("LanguageModel", "cache a dict", lambda: lm()(IDS, cache={}), Raises(TypeError, r"cache must be a qkv.KVCache or None, got dict")),
    Case("LanguageModel", "batch size changes on the cache", cached_steps(lm, torch.ones(2, 2, dtype=torch.long), IDS[:, :1]), Raises(ValueError, r"the cache holds 2 sequences but this call has batch size 1")),
    Case("EncoderModel", "float ids", lambda: encoder()(ENC.float()), Raises(TypeError, r"ids must be an integer tensor")),
    Case("EncoderModel", "ids >= vocab_size", lambda: encoder()(ENC + 9), Raises(ValueError, r"ids must lie in \[0, vocab_size\) = \[0, 10\), got ids from 9 to 14")),
    Case("EncoderModel", "over max_len", lambda: encoder()(LONG), Raises(ValueError, r"ids has 7 positions, more than the model's max_len = 6")),
    Case("EncoderModel", "integer mask", lambda: encoder()(ENC, torch.ones(1, 1, 1, 4, dtype=torch.long)), Raises(TypeError, r"mask must be boolean .* torch.int64")),
    Case("EncoderModel", "mask for T = 3, not 4", lambda: encoder()(ENC, torch.ones(1, 1, 1, 3, **BOOL)), Raises(ValueError, r"mask of shape \(1, 1, 1, 3\) does not broadcast to \(B, H, T, S\) = \(1, 2, 4, 4\)")),
    Case("EncoderModel", "float token_types", lambda: encoder()(ENC, token_types=torch.zeros(1, 4)), Raises(TypeError, r"token_types must be an integer tensor, got dtype torch.float32")),
    Case("EncoderModel", "token_types of another shape", lambda: encoder()(ENC, token_types=torch.zeros(1, 3, dtype=torch.long)), Raises(ValueError, r"token_types must have the shape of ids \(1, 4\), got \(1, 3\)")),
    Case("EncoderModel", "token_types >= type_vocab_size", lambda: encoder()(ENC, token_types=torch.full((1, 4), 2)), Raises(ValueError, r"token_types must lie in \[0, type_vocab_size\) = \[0, 2\)")),
    Case("EncoderModel", "ids on meta", lambda: encoder()(ENC.to("meta")), Raises(ValueError, r"ids is on meta but the model is on cpu")),
    Case("EncoderModel", "T = 0", lambda: encoder()(ENC[:, :0]), Returns(((1, 0, 8),))),
    Case("EncoderModel", "B = 0", lambda: encoder()(ENC[:0]), Returns(((0, 4, 8),))),
    Case("SequenceClassifier", "float ids", lambda: classifier()(ENC.float()), Raises(TypeError, r"ids must be an integer tensor of token ids")),
    Case("SequenceClassifier", "ids >= vocab_size", lambda: classifier()(ENC + 9), Raises(ValueError, r"ids must lie in \[0, vocab_size\) = \[0, 10\)")),
    Case("SequenceClassifier", "over max_len", lambda: classifier()(LONG), Raises(ValueError, r"ids has 7 positions, more than the model's max_len = 6")),
    Case("SequenceClassifier", "float mask", lambda: classifier()(ENC, torch.ones(1, 4)), Raises(TypeError, r"mask must be a bool tensor \(True = a real token\), got torch.float32")),
    Case("SequenceClassifier", "mask a list", lambda: classifier()(ENC, [[True]]), Raises(TypeError, r"mask must be a torch.Tensor, got list")),
    Case("SequenceClassifier", "mask (B, T-1)", lambda: classifier()(ENC, torch.ones(1, 3, **BOOL)), Raises(ValueError, r"mask must be \(B, T\) = \(1, 4\) or \(B, 1, 1, T\), got \(1, 3\)")),
    Case("SequenceClassifier", "mask (B, T, T)", lambda: classifier()(ENC, torch.ones(1, 4, 4, **BOOL)), Raises(ValueError, r"got \(1, 4, 4\)")),
    Case("SequenceClassifier", "T = 0, cls pooling", lambda: classifier()(ENC[:, :0]), Raises(ValueError, r"ids must have shape \(B, T\) with T >= 1 \(a token to classify\), got \(1, 0\)")),
    Case("SequenceClassifier", "T = 0, mean pooling", lambda: mean_classifier()(ENC[:, :0]), Raises(ValueError, r"with T >= 1")),
    Case("SequenceClassifier", "B = 0", lambda: classifier()(ENC[:0]), Returns(((0, 2),))),
    Case("SequenceClassifier", "a row of padding only (documented pooling)", lambda: mean_classifier()(torch.zeros(1, 3, dtype=torch.long)), Returns(((1, 2),))),

    # -- decoding
    Case("qkv.translate", "two sources", lambda: qkv.translate(transformer(), SOURCE, bos_id=1, eos_id=2), Returns(test=lambda out: len(out) == 2 and all(isinstance(i, int) for row in out for i in row))),
    Case("qkv.translate", "float source", lambda: qkv.translate(transformer(), SOURCE.float(), bos_id=1, eos_id=2), Raises(TypeError, r"src must be an integer tensor of token ids")),
    Case("qkv.translate", "source ids >= vocab_size", lambda: qkv.translate(transformer(), SOURCE + 10, bos_id=1, eos_id=2), Raises(ValueError, r"src must lie in \[0, vocab_size\) = \[0, 10\)")),
    Case("qkv.translate", "source over max_len", lambda: qkv.translate(transformer(), LONG, bos_id=1, eos_id=2), Raises(ValueError, r"src has 7 positions, more than the model's max_len = 6")),
    Case("qkv.translate", "bos_id >= vocab_size", lambda: qkv.translate(transformer(), SOURCE, bos_id=10, eos_id=2), Raises(ValueError, r"bos_id must be a token id below the vocabulary size 10, got 10")),
    Case("qkv.translate", "negative bos_id", lambda: qkv.translate(transformer(), SOURCE, bos_id=-1, eos_id=2), Raises(ValueError, r"bos_id must be >= 0, got -1")),
    Case("qkv.translate", "max_len 0", lambda: qkv.translate(transformer(), SOURCE, bos_id=1, eos_id=2, max_len=0), Raises(ValueError, r"max_len must be >= 1, got 0")),
    Case("qkv.translate", "max_len a float", lambda: qkv.translate(transformer(), SOURCE, bos_id=1, eos_id=2, max_len=3.0), Raises(TypeError, r"max_len must be an integer, got float 3.0")),
    Case("qkv.translate", "a LanguageModel", lambda: qkv.translate(lm(), SOURCE, bos_id=1, eos_id=2), Raises(TypeError, r"translate needs a qkv.Transformer, got LanguageModel")),
    Case("qkv.translate", "strategy a str", lambda: qkv.translate(transformer(), SOURCE, "greedy", bos_id=1, eos_id=2), Raises(TypeError, r"strategy must be Greedy, BeamSearch or Sampling, got 'greedy'")),
    Case("qkv.translate", "an empty source (S = 0)", lambda: qkv.translate(transformer(), SOURCE[:, :0], bos_id=1, eos_id=2), Returns(test=lambda out: len(out) == 2)),
    Case("qkv.translate", "1-D source", lambda: qkv.translate(transformer(), SOURCE[0], bos_id=1, eos_id=2), Raises(ValueError, r"must have shape \(B, ")),
    Case("qkv.translate", "source a list", lambda: qkv.translate(transformer(), [[3, 4, 2]], bos_id=1, eos_id=2), Raises(TypeError, r"must be a torch.Tensor")),
    Case("qkv.translate", "B = 0", lambda: qkv.translate(transformer(), SOURCE[:0], bos_id=1, eos_id=2), Returns(value=[])),
    Case("qkv.translate", "eos_id >= vocab_size (can never end)", lambda: qkv.translate(transformer(), SOURCE, bos_id=1, eos_id=99), Raises(ValueError, r"eos_id")),
    Case("qkv.translate", "bos_id None", lambda: qkv.translate(transformer(), SOURCE, bos_id=None, eos_id=2), Raises(TypeError, r"bos_id")),
    Case("qkv.translate", "NaN logits (greedy)", lambda: qkv.translate(nan_transformer(), SOURCE, bos_id=1, eos_id=2, max_len=3), Raises(ValueError, r"NaN")),
    Case("qkv.decoding.greedy", "float source", lambda: greedy(transformer(), SOURCE.float(), bos_id=1, eos_id=2), Raises(TypeError, r"src must be an integer tensor")),
    Case("qkv.decoding.greedy", "two sources", lambda: greedy(transformer(), SOURCE, bos_id=1, eos_id=2, max_len=3), Returns(test=lambda out: len(out) == 2 and all(len(row) <= 3 for row in out))),
    Case("qkv.generate", "two prompts", lambda: qkv.generate(lm(), [[1, 3, 4], [1]], eos_id=2, max_new_tokens=2), Returns(test=lambda out: len(out) == 2 and all(len(row) <= 2 for row in out))),
    Case("qkv.generate", "an id >= vocab_size", lambda: qkv.generate(lm(), [[1, 3, 40]], eos_id=2, max_new_tokens=2), Raises(ValueError, r"ids must lie in \[0, vocab_size\) = \[0, 10\), got ids from 1 to 40")),
    Case("qkv.generate", "a negative id", lambda: qkv.generate(lm(), [[1, -3]], eos_id=2, max_new_tokens=2), Raises(ValueError, r"ids must lie in \[0, vocab_size\)")),
    Case("qkv.generate", "no prompts", lambda: qkv.generate(lm(), [], eos_id=2), Raises(ValueError, r"every prompt needs at least one token")),
    Case("qkv.generate", "an empty prompt", lambda: qkv.generate(lm(), [[]], eos_id=2), Raises(ValueError, r"every prompt needs at least one token")),
    Case("qkv.generate", "a prompt of max_len tokens", lambda: qkv.generate(lm(), [[1] * 6], eos_id=2), Raises(ValueError, r"a prompt of 6 tokens leaves no room for new tokens within the model's max_len of 6")),
    Case("qkv.generate", "a prompt over max_len", lambda: qkv.generate(lm(), [[1] * 9], eos_id=2), Raises(ValueError, r"a prompt of 9 tokens leaves no room")),
    Case("qkv.generate", "max_new_tokens 0", lambda: qkv.generate(lm(), [[1]], eos_id=2, max_new_tokens=0), Raises(ValueError, r"max_new_tokens must be >= 1, got 0")),
    Case("qkv.generate", "a Transformer", lambda: qkv.generate(transformer(), [[1]], eos_id=2), Raises(TypeError, r"generate needs a qkv.LanguageModel, got Transformer")),
    Case("qkv.generate", "float ids", lambda: qkv.generate(lm(), [[1.0, 3.5]], eos_id=2, max_new_tokens=2), Raises(TypeError, r"int")),
    Case("qkv.generate", "boolean ids", lambda: qkv.generate(lm(), [[True, False]], eos_id=2, max_new_tokens=2), Raises(TypeError, r"int")),
    Case("qkv.generate", "prompts a tensor", lambda: qkv.generate(lm(), torch.tensor([[1, 3]]), eos_id=2, max_new_tokens=2), Raises(TypeError, r"prompts")),
    Case("qkv.generate", "a prompt that is a str", lambda: qkv.generate(lm(), ["ab"], eos_id=2, max_new_tokens=2), Raises(TypeError, r"prompts")),
    Case("qkv.generate", "prompts None", lambda: qkv.generate(lm(), None, eos_id=2), Raises(TypeError, r"prompts")),
    Case("qkv.generate", "eos_id >= vocab_size (can never end)", lambda: qkv.generate(lm(), [[1]], eos_id=99, max_new_tokens=2), Raises(ValueError, r"eos_id")),
    Case("qkv.generate", "NaN logits (greedy)", lambda: qkv.generate(nan_lm(), [[1, 3]], eos_id=2, max_new_tokens=3), Raises(ValueError, r"NaN")),
    Case("qkv.generate", "NaN logits (beam search)", lambda: qkv.generate(nan_lm(), [[1, 3]], qkv.BeamSearch(size=2), eos_id=2, max_new_tokens=3), Raises(ValueError, r"NaN")),
    Case("qkv.classify_texts", "two texts", lambda: qkv.classify_texts(text_classifier(), chars(), ["abc", "de"]), Returns(((2, 2),))),
    Case("qkv.classify_texts", "texts a str", lambda: qkv.classify_texts(text_classifier(), chars(), "abc"), Raises(TypeError, r"texts must be a sequence of str \(a list of texts\), got str")),
    Case("qkv.classify_texts", "texts None", lambda: qkv.classify_texts(text_classifier(), chars(), None), Raises(TypeError, r"texts must be a sequence of str .* got NoneType")),
    Case("qkv.classify_texts", "a text that is an int", lambda: qkv.classify_texts(text_classifier(), chars(), ["abc", 1]), Raises(TypeError, r"texts must be a sequence of str")),
    Case("qkv.classify_texts", "no texts", lambda: qkv.classify_texts(text_classifier(), chars(), []), Returns(((0, 2),))),
    Case("qkv.classify_texts", "an empty text (<bos> <eos> only)", lambda: qkv.classify_texts(text_classifier(), chars(), [""]), Returns(((1, 2),))),
    Case("qkv.classify_texts", "a text over max_len is cut (documented)", lambda: qkv.classify_texts(text_classifier(), chars(), ["hello" * 10]), Returns(((1, 2),))),
    Case("qkv.classify_texts", "batch_size 0", lambda: qkv.classify_texts(text_classifier(), chars(), ["abc"], batch_size=0), Raises(ValueError, r"batch_size must be >= 1, got 0")),
    Case("qkv.classify_texts", "batch_size a float", lambda: qkv.classify_texts(text_classifier(), chars(), ["abc"], batch_size=2.0), Raises(TypeError, r"batch_size must be an integer, got float")),
    Case("qkv.classify_texts", "a LanguageModel", lambda: qkv.classify_texts(text_lm(), chars(), ["abc"]), Raises(TypeError, r"classify_texts needs a qkv.SequenceClassifier, got LanguageModel")),
    Case("qkv.classify_texts", "tokenizer None", lambda: qkv.classify_texts(text_classifier(), None, ["abc"]), Raises(TypeError, r"tokenizer must be a qkv Tokenizer, got NoneType")),
    Case("qkv.classify_texts", "a model with a smaller vocabulary", lambda: qkv.classify_texts(classifier(), chars(), ["hello"]), Raises(ValueError, r"ids must lie in \[0, vocab_size\) = \[0, 10\)")),
    Case("qkv.classify_texts", "NaN logits give NaN probabilities", lambda: qkv.classify_texts(nan_classifier(), chars(), ["abc", "de"]), PropagatesNaN((slice(None),))),
    Case("translate_texts", "two texts", lambda: translate_texts(text_transformer(), chars(), chars(), ["abc", "de"]), Returns(test=lambda out: len(out) == 2 and all(isinstance(t, str) for t in out))),
    Case("translate_texts", "no texts", lambda: translate_texts(text_transformer(), chars(), chars(), []), Returns(value=[])),
    Case("translate_texts", "a text over max_len", lambda: translate_texts(text_transformer(), chars(), chars(), ["abcde" * 5]), Raises(ValueError, r"src has 26 positions, more than the model's max_len = 12")),
    Case("translate_texts", "batch_size 0", lambda: translate_texts(text_transformer(), chars(), chars(), ["abc"], batch_size=0), Raises(ValueError, r"batch_size must be >= 1, got 0")),
    Case("translate_texts", "a model with a smaller vocabulary", lambda: translate_texts(transformer(), chars(), chars(), ["hello"]), Raises(ValueError, r"src must lie in \[0, vocab_size\) = \[0, 10\)")),
    Case("translate_texts", "texts a str", lambda: translate_texts(text_transformer(), chars(), chars(), "abc"), Raises(TypeError, r"texts")),
    Case("translate_texts", "a text that is an int", lambda: translate_texts(text_transformer(), chars(), chars(), [1]), Raises(TypeError, r"texts")),
    Case("generate_texts", "one prompt", lambda: generate_texts(text_lm(), chars(), ["ab"], max_new_tokens=2), Returns(test=lambda out: len(out) == 1 and isinstance(out[0], str))),
    Case("generate_texts", "no prompts", lambda: generate_texts(text_lm(), chars(), [], max_new_tokens=2), Returns(value=[])),
    Case("generate_texts", "a prompt over max_len", lambda: generate_texts(text_lm(), chars(), ["hello" * 5], max_new_tokens=2), Raises(ValueError, r"a prompt of 26 tokens leaves no room for new tokens within the model's max_len of 12")),
    Case("generate_texts", "max_new_tokens 0", lambda: generate_texts(text_lm(), chars(), ["ab"], max_new_tokens=0), Raises(ValueError, r"max_new_tokens must be >= 1, got 0")),
    Case("generate_texts", "a model with a smaller vocabulary", lambda: generate_texts(lm(), chars(), ["lo"], max_new_tokens=2), Raises(ValueError, r"ids must lie in \[0, vocab_size\) = \[0, 10\), got ids from 1 to 12")),
    Case("generate_texts", "prompts a str", lambda: generate_texts(text_lm(), chars(), "ab", max_new_tokens=2), Raises(TypeError, r"prompts")),

    # -- trace
    Case("qkv.trace", "model None", lambda: qkv.trace(None), Raises(TypeError, r"model must be a torch.nn.Module, got NoneType")),
    Case("qkv.trace", "model a tensor", lambda: qkv.trace(IDS), Raises(TypeError, r"model must be a torch.nn.Module, got Tensor")),
    Case("qkv.trace", "a model without attention", lambda: qkv.trace(torch.nn.Linear(2, 2)), Raises(ValueError, r"Linear contains no qkv.MultiHeadAttention to trace")),
    Case("qkv.trace", "modules an int", lambda: qkv.trace(lm(), 3), Raises(TypeError, r"modules must be names or glob patterns \(str\) or a list of them, got int")),
    Case("qkv.trace", "modules [3]", lambda: qkv.trace(lm(), [3]), Raises(TypeError, r"modules must be names or glob patterns \(str\), got int")),
    Case("qkv.trace", "a pattern that matches nothing", lambda: qkv.trace(lm(), "encoder.*"), Raises(ValueError, r"modules: 'encoder.\*' matches no attention module; the attention modules are 'layers.0.self_attention'")),
    Case("qkv.trace", "layers a str", lambda: qkv.trace(lm(), layers="0"), Raises(TypeError, r"layers must be an int or a list of ints, got str")),
    Case("qkv.trace", "layers a float", lambda: qkv.trace(lm(), layers=0.0), Raises(TypeError, r"layers must be an int or a list of ints, got float")),
    Case("qkv.trace", "layers [True]", lambda: qkv.trace(lm(), layers=[True]), Raises(TypeError, r"layers must hold ints, got bool")),
    Case("qkv.trace", "a negative layer", lambda: qkv.trace(lm(), layers=-1), Raises(ValueError, r"layers must be ≥ 0, got -1")),
    Case("qkv.trace", "a layer the model lacks", lambda: qkv.trace(lm(), layers=99), Raises(ValueError, r"layers=\[99\]\) matches no attention module")),
    Case("qkv.trace", "no layers", lambda: qkv.trace(lm(), layers=[]), Raises(ValueError, r"layers=\[\]\) matches no attention module")),
    Case("qkv.trace", "head 2 of 2", lambda: qkv.trace(lm(), heads=2), Raises(ValueError, r"heads must be below num_heads = 2 of 'layers.0.self_attention', got \[2\]")),
    Case("qkv.trace", "a negative head", lambda: qkv.trace(lm(), heads=[-1]), Raises(ValueError, r"heads must be ≥ 0, got -1")),
    Case("qkv.trace", "no heads", lambda: qkv.trace(lm(), heads=[]), Raises(ValueError, r"heads must name at least one index \(None: all of them\)")),
    Case("qkv.trace", "heads a tensor", lambda: qkv.trace(lm(), heads=torch.tensor([0, 1])), Raises(TypeError, r"heads must hold ints, got Tensor")),
    Case("qkv.trace", "queries a str", lambda: qkv.trace(lm(), queries="0"), Raises(TypeError, r"queries must be an int or a list of ints, got str")),
    Case("qkv.trace", "no queries", lambda: qkv.trace(lm(), queries=range(0)), Raises(ValueError, r"queries must name at least one index")),
    Case("qkv.trace", "a query past the input: nothing recorded (documented)", traced(lm, lambda: IDS, queries=99), Returns(value=[])),
    Case("qkv.trace", "an unknown field", lambda: qkv.trace(lm(), fields="weight"), Raises(ValueError, r"fields must be among query, key, .* got unknown 'weight'")),
    Case("qkv.trace", "fields an int", lambda: qkv.trace(lm(), fields=3), Raises(TypeError, r"fields must be a field name \(str\) or a list of them, got int")),
    Case("qkv.trace", "no fields: metadata only", traced(lm, lambda: IDS, fields=[]), Returns(value=["layers.0.self_attention"])),
    Case("qkv.trace", "device an unknown str", lambda: qkv.trace(lm(), device="bogus"), Raises(ValueError, r"device 'bogus' is not a device")),
    Case("qkv.trace", "device a float", lambda: qkv.trace(lm(), device=3.5), Raises(TypeError, r"device must be a torch.device, a str such as 'cpu', or None, got float")),
    Case("qkv.trace", "a trace entered twice", enter_twice, Raises(RuntimeError, r"this trace is already recording")),
    Case("qkv.attention_document", "trace a dict", lambda: qkv.attention_document({}, {"text": ["a"]}), Raises(TypeError, r"trace must be a qkv.trace.Trace, got dict")),
    Case("qkv.attention_document", "tokens a list", lambda: qkv.attention_document(a_trace(), ["a", "b", "c"]), Raises(TypeError, r"tokens must be a non-empty mapping of side name")),
    Case("qkv.attention_document", "a side given as a str", lambda: qkv.attention_document(a_trace(), {"text": "abc"}), Raises(TypeError, r"tokens\['text'\] must be a list of token strings, got str")),
    Case("qkv.attention_document", "2 tokens for 3 keys", lambda: qkv.attention_document(a_trace(), {"text": ["a", "b"]}), Raises(ValueError, r"has S = 3 keys but tokens\['text'\] has 2 tokens")),
    Case("qkv.attention_document", "batch_index out of range", lambda: qkv.attention_document(a_trace(), {"text": ["a", "b", "c"]}, batch_index=1), Raises(ValueError, r"batch_index must be in \[0, 1\) for a batch of 1, got 1")),
    Case("qkv.attention_document", "an empty trace", lambda: qkv.attention_document(qkv.trace(lm()), {"text": ["a"]}), Raises(ValueError, r"the trace holds no records")),
    Case("qkv.attention_document", "NaN attention weights", lambda: qkv.attention_document(a_trace(nan_word_lm, torch.tensor([[1, 3, 4]])), {"text": ["a", "b", "c"]}), Raises(ValueError, r"'layers.0.self_attention' has NaN or infinite attention weights")),

    # -- views
    Case("qkv.views.explore", "a language model", lambda: explore(word_lm(), task="language_model", source_tokenizer=words(), text="I love")["prediction"]["kind"], Returns(value="next_token")),
    Case("qkv.views.explore", "an unknown task", lambda: explore(word_lm(), task="lm", source_tokenizer=words(), text="I"), Raises(ValueError, r"task must be one of \('translation', 'language_model', 'encoder', 'classification'\), got 'lm'")),
    Case("qkv.views.explore", "classification with a language model", lambda: explore(word_lm(), task="classification", source_tokenizer=words(), text="I"), Raises(ValueError, r"task 'classification' needs a qkv.SequenceClassifier .* got LanguageModel")),
    Case("qkv.views.explore", "translation with a language model", lambda: explore(word_lm(), task="translation", source_tokenizer=words(), text="I"), Raises(ValueError, r"task 'translation' needs a qkv.Transformer, got LanguageModel")),
    Case("qkv.views.explore", "language_model with a classifier", lambda: explore(word_classifier(), task="language_model", source_tokenizer=words(), text="I"), Raises(ValueError, r"task 'language_model' needs a qkv.LanguageModel, got SequenceClassifier")),
    Case("qkv.views.explore", "encoder with a Transformer", lambda: explore(word_transformer(), task="encoder", source_tokenizer=words(), text="I"), Raises(ValueError, r"task 'encoder' needs a qkv.EncoderModel or qkv.SequenceClassifier, got Transformer")),
    Case("qkv.views.explore", "model a str", lambda: explore("model", task="language_model", source_tokenizer=words(), text="I"), Raises(TypeError, r"model must be a qkv model \(a torch.nn.Module\), got str")),
    Case("qkv.views.explore", "tokenizer None", lambda: explore(word_lm(), task="language_model", source_tokenizer=None, text="I"), Raises(TypeError, r"source_tokenizer must be a qkv Tokenizer, got NoneType")),
    Case("qkv.views.explore", "text None", lambda: explore(word_lm(), task="language_model", source_tokenizer=words(), text=None), Raises(TypeError, r"text must be a str, got NoneType")),
    Case("qkv.views.explore", "target_text an int", lambda: explore(word_transformer(), task="translation", source_tokenizer=words(), text="I", target_text=3), Raises(TypeError, r"target_text must be a str or None, got int")),
    Case("qkv.views.explore", "text over max_len", lambda: explore(word_lm(), task="language_model", source_tokenizer=words(), text="I love my dog " * 5), Raises(ValueError, r"the text has 21 tokens, more than the limit of 12")),
    Case("qkv.views.explore", "max_tokens 0", lambda: explore(word_lm(), task="language_model", source_tokenizer=words(), text="I", max_tokens=0), Raises(ValueError, r"max_tokens must be >= 1, got 0")),
    Case("qkv.views.explore", "max_tokens a str", lambda: explore(word_lm(), task="language_model", source_tokenizer=words(), text="I", max_tokens="5"), Raises(TypeError, r"max_tokens must be an integer, got str")),
    Case("qkv.views.explore", "empty text for an encoder task", lambda: explore(word_classifier(), task="encoder", source_tokenizer=words(), text="")["sides"]["text"], Returns(value=["<bos>", "<eos>"])),
    Case("qkv.views.explore", "a model with NaN weights", lambda: explore(nan_word_lm(), task="language_model", source_tokenizer=words(), text="I love"), Raises(ValueError, r"has NaN or infinite attention weights")),
    Case("qkv.views.explore", "a classifier with NaN logits", lambda: explore(nan_word_classifier(), task="classification", source_tokenizer=words(), text="I love"), Raises(ValueError, r"the model's logits hold NaN or ±inf")),
    Case("qkv.views.check_document", "None", lambda: check_document(None), Raises(TypeError, r"an attention document must be a dict, got NoneType")),
    Case("qkv.views.check_document", "a list", lambda: check_document([]), Raises(TypeError, r"an attention document must be a dict, got list")),
    Case("qkv.views.check_document", "no attentions", lambda: check_document({"sides": {"a": ["x"]}}), Raises(ValueError, r"an attention document needs a 'attentions' field")),
    Case("qkv.views.check_document", "empty attentions", lambda: check_document(document(lambda d: d.__setitem__("attentions", []))), Raises(ValueError, r"'attentions' must be a non-empty list")),
    Case("qkv.views.check_document", "weights (1, 1, 1) for (2, 4, 4)", lambda: check_document(document(set_field("weights", [[[1.0]]]))), Raises(ValueError, r"weights must have shape \(H, T, S\) = \(2, 4, 4\), got \(1, 1, 1\)")),
    Case("qkv.views.check_document", "weights a tensor", lambda: check_document(document(set_field("weights", torch.ones(2, 4, 4)))), Raises(ValueError, r"weights must have shape \(H, T, S\) = \(2, 4, 4\), got \(\)")),
    Case("qkv.views.check_document", "an unknown kind", lambda: check_document(document(set_field("kind", "self"))), Raises(ValueError, r"kind must be one of \('encoder', 'decoder', 'cross'\), got 'self'")),
    Case("qkv.views.check_document", "num_heads a str", lambda: check_document(document(set_field("num_heads", "2"))), Raises(ValueError, r"num_heads must be a positive int, got '2'")),
    Case("qkv.views.check_document", "a side given as a str", lambda: check_document(document(lambda d: d.__setitem__("sides", {"text": "abcd"}))), Raises(ValueError, r"side 'text' must be a list of token strings, got str")),
    Case("qkv.views.check_document", "a side the document lacks", lambda: check_document(document(set_field("key_side", "source"))), Raises(ValueError, r"key_side 'source' is not a side of the document")),
    Case("qkv.views.render_html", "None", lambda: render_html(None), Raises(TypeError, r"an attention document must be a dict, got NoneType")),
    Case("qkv.views.render_html", "an unknown view", lambda: render_html(tiny_document(), views=["heads"]), Raises(ValueError, r"views must be a non-empty selection of \('head', 'model', 'neuron', 'step'\), got \('heads',\)")),
    Case("qkv.views.render_html", "no views", lambda: render_html(tiny_document(), views=[]), Raises(ValueError, r"views must be a non-empty selection")),
    Case("qkv.views.render_html", "a NaN weight", lambda: render_html(document(set_weight(NAN))), Raises(ValueError, r"the data holds NaN or ±inf, which JSON cannot carry")),
    Case("qkv.views.render_html", "an infinite weight", lambda: render_html(document(set_weight(INF))), Raises(ValueError, r"which JSON cannot carry")),
]


def heatmap_cases(tmp):
    """Rows that write files: built per test run, in pytest's temporary folder."""
    doc, name = tiny_document(), "layers.0.self_attention"
    return [
        Case("qkv.views.save_heatmap", "a .png", lambda: save_heatmap(doc, tmp / "a.png").is_file(), Returns(value=True)),
        Case("qkv.views.save_heatmap", "a .jpg", lambda: save_heatmap(doc, tmp / "a.jpg"), Raises(ValueError, r"heatmap path must end in .png or .svg, got 'a.jpg'")),
        Case("qkv.views.save_heatmap", "no suffix", lambda: save_heatmap(doc, tmp / "a"), Raises(ValueError, r"heatmap path must end in .png or .svg, got 'a'")),
        Case("qkv.views.save_heatmap", "path None", lambda: save_heatmap(doc, None), Raises(TypeError, r"path must be a str or a Path, got NoneType")),
        Case("qkv.views.save_heatmap", "an attention the document lacks", lambda: save_heatmap(doc, tmp / "b.png", name="nope"), Raises(ValueError, r"no attention named 'nope'")),
        Case("qkv.views.save_heatmap", "head 99 of 2", lambda: save_heatmap(doc, tmp / "c.png", name=name, head=99), Raises(ValueError, r"head must be in \[0, 2\) for 'layers.0.self_attention', got 99")),
        Case("qkv.views.save_heatmap", "head -1", lambda: save_heatmap(doc, tmp / "c.png", name=name, head=-1), Raises(ValueError, r"head must be in \[0, 2\)")),
        Case("qkv.views.save_heatmap", "head a float", lambda: save_heatmap(doc, tmp / "c.png", name=name, head=0.5), Raises(TypeError, r"head must be an int, got float 0.5")),
        Case("qkv.views.save_heatmap", "an unknown kind", lambda: save_heatmap(doc, tmp / "d.png", kind="self"), Raises(ValueError, r"the document has no 'self' attention; it has \['decoder'\]")),
        Case("qkv.views.save_heatmap", "dpi 0", lambda: save_heatmap(doc, tmp / "e.png", dpi=0), Raises(ValueError, r"dpi must be > 0, got 0")),
        Case("qkv.views.save_heatmap", "dpi a str", lambda: save_heatmap(doc, tmp / "e.png", dpi="high"), Raises(TypeError, r"dpi must be a number, got str")),
        Case("qkv.views.save_heatmap", "document None", lambda: save_heatmap(None, tmp / "f.png"), Raises(TypeError, r"an attention document must be a dict, got NoneType")),
        Case("qkv.views.save_heatmap", "a NaN weight (grid)", lambda: save_heatmap(document(set_weight(NAN)), tmp / "g.png"), Raises(ValueError, r"attention 'layers.0.self_attention', head 0: weights must be finite numbers")),
        Case("qkv.views.save_heatmap", "a null weight (one head)", lambda: save_heatmap(document(set_weight(None)), tmp / "h.png", name=name), Raises(ValueError, r"weights must be finite numbers, got NaN, ±inf or null")),
    ]


def loader_cases(tmp):
    """``qkv.load_checkpoint`` and ``qkv.load_pretrained`` on folders that are not what they take."""
    empty = folder_with(tmp, "empty", {})
    return [
        Case("qkv.load_checkpoint", "path None", lambda: qkv.load_checkpoint(None), Raises(TypeError, r"os.PathLike object, not NoneType")),
        Case("qkv.load_checkpoint", "a path that does not exist", lambda: qkv.load_checkpoint(tmp / "nope"), Raises(FileNotFoundError, r"no checkpoint at .*nope: the path does not exist")),
        Case("qkv.load_checkpoint", "an empty folder", lambda: qkv.load_checkpoint(empty), Raises(FileNotFoundError, r"no checkpoint at .*empty: expected checkpoint.json")),
        Case("qkv.load_checkpoint", "a damaged checkpoint.json", lambda: qkv.load_checkpoint(folder_with(tmp, "damaged", {"checkpoint.json": "{not json"})), Raises(ValueError, r"checkpoint.json is damaged: not JSON")),
        Case("qkv.load_checkpoint", "a checkpoint.json of another program", lambda: qkv.load_checkpoint(folder_with(tmp, "other", {"checkpoint.json": "{}"})), Raises(ValueError, r"checkpoint.json is not a qkv checkpoint")),
        Case("qkv.load_pretrained", "path None", lambda: qkv.load_pretrained(None), Raises(TypeError, r"os.PathLike object, not NoneType")),
        Case("qkv.load_pretrained", "a path that does not exist", lambda: qkv.load_pretrained(tmp / "nope"), Raises(FileNotFoundError, r"is not a folder; qkv reads a local checkpoint folder")),
        Case("qkv.load_pretrained", "a folder without config.json", lambda: qkv.load_pretrained(empty), Raises(FileNotFoundError, r"has no config.json, so its model family is unknown")),
        Case("qkv.load_pretrained", "an unsupported family", lambda: qkv.load_pretrained(folder_with(tmp, "llama", {"config.json": json.dumps({"model_type": "llama"})})), Raises(ValueError, r"config.json has model_type 'llama', which qkv cannot load")),
        Case("qkv.load_pretrained", "config.json a list", lambda: qkv.load_pretrained(folder_with(tmp, "list", {"config.json": "[1, 2]"})), Raises(ValueError, r"config.json must hold .*, got a list")),
        Case("qkv.load_pretrained", "a damaged config.json", lambda: qkv.load_pretrained(folder_with(tmp, "broken", {"config.json": "{bad"})), Raises(ValueError, r"config.json is damaged")),
        Case("qkv.load_pretrained", "no weights", lambda: qkv.load_pretrained(folder_with(tmp, "gpt2", {"config.json": json.dumps({"model_type": "gpt2"})})), Raises(FileNotFoundError, r"has no weights: expected model.safetensors")),
    ]


def param(case: Case):
    marks = () if case.known is None else pytest.mark.xfail(strict=True, reason=case.known)
    return pytest.param(case, id=f"{case.entry}: {case.name}", marks=marks)


@pytest.mark.parametrize("case", [param(case) for case in CASES])
def test_bad_input(case: Case):
    case.expect.check(case.call)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("bad-input")


HEATMAP_ROWS, LOADER_ROWS = 14, 12       # built per run (they write files): counted here


@pytest.mark.parametrize("row", range(HEATMAP_ROWS))
def test_bad_input_to_save_heatmap(row, folder):
    cases = heatmap_cases(folder)
    assert len(cases) == HEATMAP_ROWS
    cases[row].expect.check(cases[row].call)


@pytest.mark.parametrize("row", range(LOADER_ROWS))
def test_bad_input_to_the_loaders(row, folder):
    cases = loader_cases(folder / f"loaders-{row}")
    assert len(cases) == LOADER_ROWS
    cases[row].expect.check(cases[row].call)


def test_the_table_covers_every_entry_point(tmp_path):
    every = CASES + heatmap_cases(tmp_path) + loader_cases(tmp_path)
    counts = Counter(case.entry for case in every)
    known = Counter(case.entry for case in every if case.known)
    print(f"\n{len(every)} rows, {sum(known.values())} of them known gaps (strict xfail):")
    for entry, count in counts.items():
        print(f"  {entry:40s} {count:4d}" + (f"  ({known[entry]} known)" if known[entry] else ""))
    assert len(every) >= 150
    assert len({(case.entry, case.name) for case in every}) == len(every), "duplicate rows"
    expected = {SDPA, "qkv.padding_mask", "qkv.length_mask", "qkv.causal_mask",
                "qkv.combine_masks", "qkv.mask_from_torch", "MultiHeadAttention self",
                "MultiHeadAttention cross", "MultiHeadAttention GQA", "MultiHeadAttention cache",
                "Transformer", "Transformer.encode", "Transformer.decode", "LanguageModel",
                "EncoderModel", "SequenceClassifier", "qkv.translate", "qkv.generate",
                "qkv.decoding.greedy", "qkv.classify_texts", "translate_texts", "generate_texts",
                "qkv.trace", "qkv.attention_document", "qkv.views.explore",
                "qkv.views.check_document", "qkv.views.render_html", "qkv.views.save_heatmap",
                "qkv.load_checkpoint", "qkv.load_pretrained"}
    assert expected <= set(counts), expected - set(counts)
