"""Decoding: greedy, beam search and sampling, one loop for both model kinds, with the KV cache.

:func:`translate` decodes a :class:`~qkv.Transformer` from source ids; :func:`generate` continues
prompts with a :class:`~qkv.LanguageModel`. Both run the same search over a small "steps" object
that returns the next-token logits of every row and can reorder its rows (beam search). With
``use_cache=True`` (the default) each step feeds only the new token and reuses the keys and values
of the earlier ones (:class:`~qkv.KVCache`); ``use_cache=False`` recomputes the whole prefix every
step and gives the same tokens.

Every strategy also takes the controls of Hugging Face ``transformers``' ``generate``, with its
semantics: ``no_repeat_ngram_size``, ``repetition_penalty`` and ``min_length`` (counted in new
tokens, as ``min_new_tokens``). One step, :func:`~qkv.decoding.controls.process_scores`, applies
them to the ``(N, V)`` scores of the next token before the search chooses from them: raw logits
for greedy search and sampling, log-probabilities for beam search (as ``transformers`` does).
Logits holding NaN are an error, not tokens. The tokens the controls look at are
the row's whole prefix: a language model's prompt and what it generated (its left padding not
counted), a translation's ``<bos>`` and what it generated. ``num_return`` (beam search, sampling)
returns K hypotheses per input.

Shapes: ``B`` sentences, ``K`` beams, ``N = B·K`` rows, ``V`` vocabulary, ``t`` tokens so far.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from qkv._checks import check_int, check_positive_int
from qkv.attention.masks import padding_mask
from qkv.decoding.controls import Controls, process_scores
from qkv.models.cache import KVCache
from qkv.models.embeddings import check_token_ids
from qkv.models.inference import IncrementalDecoder, decoding_support
from qkv.models.language_model import LanguageModel
from qkv.models.transformer import Transformer

__all__ = ["Greedy", "BeamSearch", "Sampling", "translate", "generate", "greedy"]


@dataclass(frozen=True)
class Greedy(Controls):
    """Take the most probable token at every step (one hypothesis per input). Like every
    strategy, it takes the keyword-only controls ``no_repeat_ngram_size``, ``repetition_penalty``
    and ``min_length`` (see :func:`~qkv.decoding.controls.process_scores`)."""

    num_return: ClassVar[int] = 1


@dataclass(frozen=True)
class BeamSearch(Controls):
    """Keep the ``size`` best prefixes; rank finished ones by ``log p / lp(length)``, with
    GNMT's length penalty ``lp = ((5 + length) / 6) ** length_penalty`` (the paper: 4 and 0.6).
    ``size=1`` is greedy decoding. ``num_return`` K ≤ ``size``: the K best finished hypotheses
    of each input, best first."""

    size: int = 4
    length_penalty: float = 0.6
    num_return: int = field(default=1, kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_int("size", self.size)
        if self.length_penalty < 0:
            raise ValueError(f"length_penalty must be >= 0, got {self.length_penalty}")
        check_positive_int("num_return", self.num_return)
        if self.num_return > self.size:
            raise ValueError(f"num_return must be <= size (the beams that return), got "
                             f"num_return={self.num_return} with size={self.size}")


@dataclass(frozen=True)
class Sampling(Controls):
    """Draw each token from the softmax of ``logits / temperature``, restricted to the ``top_k``
    most probable tokens and/or the smallest set whose probability reaches ``top_p``.
    ``num_return`` K: K independent samples of each input."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    num_return: int = field(default=1, kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.top_k is not None:
            check_positive_int("top_k", self.top_k)
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        check_positive_int("num_return", self.num_return)


Strategy = Greedy | BeamSearch | Sampling


class _TranslationSteps:
    """Next-token logits of a Transformer's decoder, the source encoded once."""

    def __init__(self, model: Transformer, source: Tensor, use_cache: bool,
                 source_pad_id: int | None) -> None:
        self.model = model
        self.memory_mask = model.source_mask(source)                    # (N, 1, 1, S)
        if self.memory_mask is None and source_pad_id is not None:     # e.g. a Marian model
            self.memory_mask = padding_mask(source, source_pad_id)
        self.memory = model.encode(source, self.memory_mask)            # (N, S, E)
        self.cache = KVCache() if use_cache else None

    def logits(self, tokens: Tensor) -> Tensor:
        """``tokens (N, t)``, the whole prefix → logits of the next token ``(N, V)``."""
        new = tokens if self.cache is None else tokens[:, self.cache.length:]
        return self.model.decode(new, self.memory, self.memory_mask, cache=self.cache)[:, -1]

    def select(self, rows: Tensor) -> None:
        """Keep rows ``rows (N',)`` in that order."""
        self.memory = self.memory.index_select(0, rows)
        if self.memory_mask is not None:
            self.memory_mask = self.memory_mask.index_select(0, rows)
        if self.cache is not None:
            self.cache.reorder(rows)


class _LanguageModelSteps:
    """Next-token logits of a language model; left-padded prompts keep their own positions.

    With the cache, on the fast path (:class:`~qkv.models.inference.IncrementalDecoder`) where
    :func:`~qkv.models.inference.decoding_support` allows it (eval mode, nothing recording), else
    on the model's modules with a :class:`~qkv.KVCache`; both give the same tokens."""

    def __init__(self, model: LanguageModel, use_cache: bool, capacity: int = 0,
                 fast: bool = True) -> None:
        self.model = model
        self.pad_id = model.config.pad_id
        self.cache = KVCache(capacity=capacity or None) if use_cache else None
        self.decoder = None
        if use_cache and fast and decoding_support(model) is None:
            self.decoder = IncrementalDecoder(model, capacity)
        self.seen = 0

    def logits(self, tokens: Tensor) -> Tensor:
        if self.pad_id is None:
            positions = torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens)
        else:                                 # each row's first real token is at position 0
            positions = ((tokens != self.pad_id).cumsum(dim=1) - 1).clamp(min=0)   # (N, t)
        if self.decoder is not None:
            start, self.seen = self.seen, tokens.shape[1]
            if start == 0:                    # the prompt: the model's own checks, once
                check_token_ids("ids", tokens, self.model.config.vocab_size,
                                device=self.model.output_layer.weight.device)
            return self.decoder(tokens[:, start:], positions[:, start:])   # (N, V)
        start = 0 if self.cache is None else self.cache.length
        return self.model(tokens[:, start:], positions=positions[:, start:],
                          cache=self.cache)[:, -1]                      # (N, V)

    def select(self, rows: Tensor) -> None:
        if self.decoder is not None:
            self.decoder.select(rows)
        if self.cache is not None:
            self.cache.reorder(rows)


# -- public entry points ---------------------------------------------------------------------------

Hypotheses = list[list[int]] | list[list[list[int]]]


@torch.no_grad()
def translate(model: Transformer, source: Tensor, strategy: Strategy = Greedy(), *, bos_id: int,
              eos_id: int, max_len: int | None = None, use_cache: bool = True,
              source_pad_id: int | None = None) -> Hypotheses:
    """Decode a target for every source sentence.

    Args:
        model: an encoder–decoder (put it in eval mode for deterministic output).
        source: source ids, padded with the model's pad id, ending with ``<eos>``.
        strategy: :class:`Greedy`, :class:`BeamSearch` or :class:`Sampling`, with their controls
            (``no_repeat_ngram_size``, ``repetition_penalty``, ``min_length``: they look at the
            target's ``<bos>`` and the tokens generated) and ``num_return``.
        bos_id, eos_id: the target's start and end tokens.
        max_len: most tokens to produce; default ``2·S + 10`` for a source of ``S`` tokens
            (padding not counted), within the model's ``max_len``. It wins over ``min_length``.
        use_cache: decode step by step with a KV cache (same tokens, less work).
        source_pad_id: the id that pads ``source`` when the model's config has no ``pad_id``
            (converted Marian models: their masks come from the tokenizer's pad id).

    Shape:
        ``source (B, S)`` → B lists of target ids, without ``<bos>`` and ``<eos>``; with
        ``strategy.num_return`` K > 1, B lists of K such lists (beam search: best first).

    Example:
        >>> import torch, qkv
        >>> model = qkv.Transformer(qkv.TransformerConfig(vocab_size=12, d_model=16, num_heads=2,
        ...                                               num_layers=1, d_ff=32)).eval()
        >>> source = torch.tensor([[5, 6, 7, 2], [8, 2, 0, 0]])
        >>> greedy = translate(model, source, bos_id=1, eos_id=2, max_len=6)
        >>> greedy == translate(model, source, BeamSearch(size=1), bos_id=1, eos_id=2, max_len=6)
        True
        >>> two = translate(model, source, BeamSearch(size=3, num_return=2), bos_id=1, eos_id=2,
        ...                 max_len=6)
        >>> [len(hypotheses) for hypotheses in two]             # (B, K) lists of ids
        [2, 2]
    """
    if not isinstance(model, Transformer):
        raise TypeError(f"translate needs a qkv.Transformer, got {type(model).__name__}")
    if not isinstance(source, Tensor):
        raise TypeError(f"source must be a torch.Tensor of token ids, got {type(source).__name__}")
    if source.dim() != 2:
        raise ValueError(f"source must have shape (B, S), got {tuple(source.shape)}")
    vocab = model.config.target_vocab_size
    _check_token_id("bos_id", bos_id, vocab, optional=False)
    _check_token_id("eos_id", eos_id, vocab)
    if source.shape[0] == 0:
        return []
    limit = model.config.max_len - 1
    if max_len is None:                          # per sentence: 2 · its own length + 10
        pad = model.config.pad_id if model.config.pad_id is not None else source_pad_id
        lengths = (source != pad).sum(dim=1) if pad is not None else \
            torch.full((source.shape[0],), source.shape[1])
        limits = [min(limit, 2 * n + 10) for n in lengths.tolist()]
    else:
        limits = [min(check_positive_int("max_len", max_len), limit)] * source.shape[0]
    prefix = torch.full((source.shape[0], 1), bos_id, dtype=torch.long, device=source.device)
    steps = _TranslationSteps(model, source, use_cache, source_pad_id)
    return _search(steps, prefix, strategy, bos_id=bos_id, eos_id=eos_id,
                   pad_id=model.config.pad_id, limits=limits)


def greedy(model: Transformer, source: Tensor, *, bos_id: int, eos_id: int,
           max_len: int | None = None) -> list[list[int]]:
    """Greedy :func:`translate`: ``source (B, S)`` → B lists of target ids."""
    return translate(model, source, Greedy(), bos_id=bos_id, eos_id=eos_id, max_len=max_len)


@torch.no_grad()
def generate(model: LanguageModel, prompts: Sequence[Sequence[int]], strategy: Strategy = Greedy(),
             *, eos_id: int | None, max_new_tokens: int = 100,
             use_cache: bool = True) -> Hypotheses:
    """Continue each prompt with a language model.

    Args:
        model: a decoder-only model (in eval mode for deterministic output).
        prompts: token-id lists (with ``<bos>`` first if the model was trained so), of any
            lengths: they are left-padded, each row keeping positions from 0.
        strategy: :class:`Greedy`, :class:`BeamSearch` or :class:`Sampling`, with their controls
            (``no_repeat_ngram_size`` and ``repetition_penalty`` count the prompt's tokens too,
            as ``transformers`` does; ``min_length`` counts new tokens only) and ``num_return``.
        eos_id: generation of a row stops at this token (``None``: never).
        max_new_tokens: most tokens to add to each prompt, within the model's ``max_len``.

    Returns:
        The new ids of every prompt (the prompt and the final ``<eos>`` excluded); with
        ``strategy.num_return`` K > 1, a list of K such lists per prompt (beam search: best
        first).

    Example:
        >>> import qkv
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=12, d_model=16,
        ...     num_heads=2, num_layers=1, d_ff=32)).eval()
        >>> out = generate(model, [[1, 5, 6], [1, 7]], eos_id=2, max_new_tokens=4)
        >>> [len(ids) <= 4 for ids in out]
        [True, True]
        >>> out = generate(model, [[1, 5, 6]], Sampling(seed=0, num_return=3), eos_id=2,
        ...                max_new_tokens=4)
        >>> len(out), len(out[0])                               # 1 prompt, 3 samples
        (1, 3)
    """
    if not isinstance(model, LanguageModel):
        raise TypeError(f"generate needs a qkv.LanguageModel, got {type(model).__name__}")
    _check_prompts(prompts)
    _check_token_id("eos_id", eos_id, model.config.vocab_size)
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (e.g. <bos>)")
    pad_id = model.config.pad_id
    if pad_id is None and len({len(p) for p in prompts}) > 1:     # no padding: one at a time
        return [generate(model, [p], strategy, eos_id=eos_id, max_new_tokens=max_new_tokens,
                         use_cache=use_cache)[0] for p in prompts]
    check_positive_int("max_new_tokens", max_new_tokens)
    limits = [min(max_new_tokens, model.config.max_len - len(p)) for p in prompts]
    if min(limits) < 1:
        longest = max(len(p) for p in prompts)
        raise ValueError(f"a prompt of {longest} tokens leaves no room for new tokens within the "
                         f"model's max_len of {model.config.max_len}")
    longest = max(len(p) for p in prompts)
    device = next(model.parameters()).device
    prefix = torch.full((len(prompts), longest), pad_id if pad_id is not None else 0,
                        dtype=torch.long, device=device)
    for row, prompt in enumerate(prompts):                       # left padding
        prefix[row, longest - len(prompt):] = torch.as_tensor(list(prompt), device=device)
    start = torch.tensor([longest - len(p) for p in prompts], device=device)   # (B,)
    steps = _LanguageModelSteps(model, use_cache, capacity=longest + max(limits))
    return _search(steps, prefix, strategy, bos_id=None, eos_id=eos_id, pad_id=pad_id,
                   limits=limits, start=start)


# -- checks -----------------------------------------------------------------------------------------

def _check_token_id(name: str, value: object, vocab_size: int, *, optional: bool = True) -> None:
    """A special token id: an int in ``[0, vocab_size)`` (or ``None`` where ``optional``); an
    ``eos_id`` the model can never produce would decode every row to its length limit."""
    if value is None and optional:
        return
    check_int(name, value, minimum=0)
    if value >= vocab_size:
        raise ValueError(f"{name} must be a token id below the vocabulary size {vocab_size}, "
                         f"got {value}")


def _check_prompts(prompts: object) -> None:
    """``prompts``: a list of token-id lists (ints, not floats or bools), not a tensor or a str."""
    if isinstance(prompts, (str, bytes, Tensor)) or not isinstance(prompts, Sequence):
        raise TypeError(f"prompts must be a list of token-id lists, got {type(prompts).__name__}")
    for row, prompt in enumerate(prompts):
        if isinstance(prompt, (str, bytes)) or not isinstance(prompt, Sequence):
            raise TypeError(f"prompts[{row}] must be a list of token ids, got "
                            f"{type(prompt).__name__} {prompt!r:.40}")
        for token in prompt:
            if isinstance(token, bool) or not isinstance(token, numbers.Integral):
                raise TypeError(f"prompts[{row}] must hold int token ids, got "
                                f"{type(token).__name__} {token!r}")


def _finite(logits: Tensor, step: int) -> Tensor:
    """The step's next-token logits in float32; NaN is an error (argmax and sampling would turn it
    into tokens, and beam search into an empty output)."""
    logits = logits.float()
    if torch.isnan(logits).any():
        raise ValueError(f"the model's next-token logits hold NaN at decoding step {step}; "
                         f"check its weights and inputs")
    return logits


# -- the search ------------------------------------------------------------------------------------

def _search(steps, prefix: Tensor, strategy: Strategy, *, bos_id: int | None, eos_id: int | None,
            pad_id: int | None, limits: list[int], start: Tensor | None = None) -> Hypotheses:
    """Extend each row of ``prefix (B, t)`` by at most ``limits[row]`` tokens; ``start (B,)``: each
    row's first real position (default 0). ``strategy.num_return`` hypotheses per row."""
    if not isinstance(strategy, (Greedy, Sampling, BeamSearch)):
        raise TypeError(f"strategy must be Greedy, BeamSearch or Sampling, got {strategy!r}")
    banned = [i for i in (pad_id, bos_id) if i is not None and i != eos_id]
    # what a finished row is fed: padding (masked out) where there is a pad id
    filler = pad_id if pad_id is not None else (eos_id if eos_id is not None else 0)
    if start is None:
        start = torch.zeros(prefix.shape[0], dtype=torch.long, device=prefix.device)
    K = strategy.num_return
    if isinstance(strategy, BeamSearch) and strategy.size > 1:
        hypotheses = _beam_search(steps, prefix, start, strategy, banned, eos_id, filler, limits)
    else:
        if K > 1:                                          # K independent samples: each row K times
            rows = torch.arange(prefix.shape[0], device=prefix.device).repeat_interleave(K)
            steps.select(rows)
            prefix, start = prefix.index_select(0, rows), start.index_select(0, rows)  # (B·K, t)
            limits = [n for n in limits for _ in range(K)]
        outputs = _greedy_or_sample(steps, prefix, start, strategy, banned, eos_id, filler, limits)
        hypotheses = [outputs[i:i + K] for i in range(0, len(outputs), K)]
    return hypotheses if K > 1 else [h[0] for h in hypotheses]


def _greedy_or_sample(steps, prefix: Tensor, start: Tensor, strategy: Greedy | Sampling,
                      banned: list[int], eos_id: int | None, filler: int,
                      limits: list[int]) -> list[list[int]]:
    """One token per row and step, the argmax or a draw, until ``<eos>`` or the row's limit. A row
    left with no token allowed (every one banned) ends there."""
    generator = None
    if isinstance(strategy, Sampling) and strategy.seed is not None:
        generator = torch.Generator(device=prefix.device).manual_seed(strategy.seed)
    tokens = prefix                                                     # (N, t)
    finished = torch.zeros(prefix.shape[0], dtype=torch.bool, device=prefix.device)
    limit = torch.tensor(limits, device=prefix.device)                  # (N,)
    lengths = limit.clone()                                             # (N,) new tokens kept
    for step in range(max(limits)):
        logits = _finite(steps.logits(tokens), step)                    # (N, V)
        scores = logits                                                 # (N, V)
        if _controls_apply(strategy, banned, eos_id, step):
            scores = process_scores(logits, tokens, strategy, new_tokens=step, eos_id=eos_id,
                                    banned=banned, start=start)         # (N, V)
        if isinstance(strategy, Sampling):
            stuck = (scores == -math.inf).all(dim=-1)                   # (N,) nothing allowed
            scores = scores.masked_fill((finished | stuck)[:, None], 0.0)  # such rows: filler
            next_token = _sample(scores, strategy, generator)           # (N,)
        else:                       # one pass: the argmax, and whether its score is -inf
            next_token = scores.argmax(dim=-1)                          # (N,)
            stuck = scores.gather(-1, next_token[:, None])[:, 0] == -math.inf
        next_token = next_token.masked_fill(finished | stuck, filler)
        tokens = torch.cat([tokens, next_token[:, None]], dim=1)        # (N, t + 1)
        ends = ~finished & (stuck if eos_id is None else stuck | (next_token == eos_id))
        lengths = torch.where(ends, step, lengths)
        finished |= ends | (limit <= step + 1)
        if finished.all():
            break
    return [row[:n] for row, n in zip(tokens[:, prefix.shape[1]:].tolist(), lengths.tolist())]


def _controls_apply(strategy: Strategy, banned: list[int], eos_id: int | None,
                    step: int) -> bool:
    """Whether :func:`process_scores` would change any score at this step."""
    return bool(banned or strategy.repetition_penalty != 1.0
                or strategy.no_repeat_ngram_size is not None
                or eos_id is not None and step < strategy.min_length)


def _beam_search(steps, prefix: Tensor, start: Tensor, strategy: BeamSearch, banned: list[int],
                 eos_id: int | None, filler: int, limits: list[int]) -> list[list[list[int]]]:
    """Beam search with K live beams per row and, apart, the hypotheses that have ended.

    Each step ranks the 2K best extensions of the live beams: those that end (``<eos>``, among
    the first K) join the row's finished pool, scored ``log p / lp(length)`` with GNMT's
    ``lp(n) = ((5 + n) / 6) ** α``; the best K others stay live. A row is done once it holds K
    finished hypotheses and its best live beam, normalised now, cannot beat the worst of them.
    At its length limit a row's first K extensions all join the pool, and it is done (as in
    ``transformers``); a row whose every extension is banned ends with its live beams as they
    are. Returns the ``num_return`` best of each row's pool, best first.
    """
    B, K = prefix.shape[0], strategy.size
    device, prompt_length = prefix.device, prefix.shape[1]
    rows = torch.arange(B, device=device).repeat_interleave(K)          # (N,) N = B·K
    steps.select(rows)
    tokens = prefix.index_select(0, rows)                               # (N, t)
    start = start.index_select(0, rows)                 # (N,) the same for every beam of a row
    scores = torch.full((B, K), -math.inf, device=device)
    scores[:, 0] = 0.0                                                  # one live beam at first
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
    done = [False] * B

    def normalised(score: float, length: int) -> float:
        return score / ((5.0 + length) / 6.0) ** strategy.length_penalty

    for step in range(max(limits)):
        log_probs = torch.log_softmax(_finite(steps.logits(tokens), step), dim=-1)  # (N, V)
        log_probs = process_scores(log_probs, tokens, strategy, new_tokens=step, eos_id=eos_id,
                                   banned=banned, start=start)
        V = log_probs.shape[-1]
        candidates = (scores[..., None] + log_probs.view(B, K, V)).view(B, K * V)
        top_scores, top = (t.tolist() for t in candidates.topk(min(2 * K, K * V), dim=-1))
        beams = [[k for k in range(K)] for _ in range(B)]               # which beam each extends
        next_tokens = [[filler] * K for _ in range(B)]
        new_scores = [[-math.inf] * K for _ in range(B)]
        for b in range(B):
            if done[b]:
                continue
            at_limit, live = step + 1 >= limits[b], 0
            for rank, (score, index) in enumerate(zip(top_scores[b], top[b])):
                if score == -math.inf or live == K:
                    break
                beam, token = divmod(index, V)
                if rank < K and (token == eos_id or at_limit):   # it ends here (eos or length)
                    ids = tokens[b * K + beam, prompt_length:].tolist()
                    finished[b].append((normalised(score, step + 1),
                                        ids if token == eos_id else ids + [token]))
                if token == eos_id:
                    continue
                beams[b][live], next_tokens[b][live], new_scores[b][live] = beam, token, score
                live += 1
            if top_scores[b][0] == -math.inf:     # no token allowed: live beams end as they are
                finished[b] += [(normalised(s, step), tokens[b * K + k, prompt_length:].tolist())
                                for k, s in enumerate(scores[b].tolist()) if s > -math.inf]
            best_finished = sorted((f[0] for f in finished[b]), reverse=True)[:K]
            done[b] = at_limit or live == 0 or (
                len(best_finished) == K and
                normalised(new_scores[b][0], step + 1) <= best_finished[-1])
        order = torch.tensor([b * K + beam for b in range(B) for beam in beams[b]], device=device)
        steps.select(order)
        next_column = torch.tensor(next_tokens, device=device).view(-1, 1)   # (N, 1)
        tokens = torch.cat([tokens.index_select(0, order), next_column], dim=1)
        scores = torch.tensor(new_scores, device=device)                # (B, K)
        if all(done):
            break
    best = [sorted(pool, key=lambda f: f[0], reverse=True)[:strategy.num_return]
            for pool in finished]                       # stable: ties keep the earlier first
    return [[_until_eos(ids, eos_id) for _, ids in pool] or [[]] for pool in best]


def _sample(logits: Tensor, strategy: Sampling, generator: torch.Generator | None) -> Tensor:
    """One token per row from ``logits (N, V)`` under temperature, top-k and top-p."""
    logits = logits / strategy.temperature
    if strategy.top_k is not None and strategy.top_k < logits.shape[-1]:
        values, indices = logits.topk(strategy.top_k, dim=-1)           # (N, k): ties cut at k
        logits = torch.full_like(logits, -math.inf).scatter(-1, indices, values)
    if strategy.top_p is not None and strategy.top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # drop a token when the tokens before it already reach top_p (the first always stays)
        drop = probs.cumsum(dim=-1) - probs >= strategy.top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, -math.inf))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (N,)


def _until_eos(ids: list[int], eos_id: int | None) -> list[int]:
    return ids[:ids.index(eos_id)] if eos_id is not None and eos_id in ids else ids
