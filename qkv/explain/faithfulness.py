"""How far to trust an attribution: delete the tokens it ranks first, and see the score fall.

An attribution ranks the subject's *removable* tokens (every token that is not
:attr:`~qkv.explain.Subject.special`) by score, highest first — signed scores as they are, so a
token that argues against the target ranks last. A token is removed by **deleting** it from its
side (the sequence gets shorter; ERASER's removal), and the target score of each variant is
computed by :meth:`~qkv.explain.Subject.score` (a probability by default; the cosine for a
:class:`~qkv.explain.Similarity` target). With ``s(·)`` that score and ``x`` the input:

* **comprehensiveness** at a fraction ``f``: ``s(x) − s(x without its top-k tokens)``, high when
  the tokens ranked first were needed; **sufficiency**: ``s(x) − s(x with only its top-k tokens
  and the special ones)``, low when they were enough (DeYoung, Jain, Rajani, Lehman, Xiong, Socher
  & Wallace, 2020, "ERASER: A Benchmark to Evaluate Rationalized NLP Models"). ``k =
  max(1, ⌈f·R⌉)`` of the ``R`` removable tokens; both are averaged over the fractions, ERASER's
  AOPC form (its bins are the default fractions: 1, 5, 10, 20, 50 %).
* **AOPC**, the area over the perturbation curve (Samek, Binder, Montavon, Lapuschkin & Müller,
  2017, "Evaluating the Visualization of What a Deep Neural Network Has Learned"): tokens removed
  most-important-first, ``AOPC = 1/(K+1) Σ_{k} (s(x) − s(x^{(k)}))`` over the curve's points
  ``k = 0, 1, …, R`` (``curve="tokens"``, one token at a time) or ``k = 0`` and the fractions'
  ``k`` (``curve="fractions"``).

Each is reported next to the **random baseline**: the same numbers for ``random_orders`` random
rankings of the removable tokens (seeded: the same seed gives the same orders), mean ± std. A
method is faithful in so far as it beats it.

A model needs a token on each side: a variant that would leave a side with none keeps one — when
removing the top-k, the side's token ranked lowest; when keeping only the top-k, the side's token
ranked highest. (Only a side without special tokens can run out.)

The variants of all rankings are scored together: equal lengths run as one batch.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from qkv._checks import shape_str
from qkv.explain.attribution import Attribution, attribute
from qkv.explain.subject import SCORES, Subject
from qkv.explain.targets import Similarity

__all__ = ["faithfulness", "faithfulness_table", "FaithfulnessResult", "FaithfulnessTable",
           "Perturbation", "RandomBaseline", "CURVES", "FRACTIONS"]

FRACTIONS = (0.01, 0.05, 0.1, 0.2, 0.5)
CURVES = ("tokens", "fractions")
METRICS = ("comprehensiveness", "sufficiency", "aopc")


@dataclass(frozen=True)
class Perturbation:
    """What deleting tokens in one ranking's order did to the score.

    Attributes:
        comprehensiveness: the mean over the fractions of ``s(x) − s(x without the top-k)``
            (higher = more faithful).
        sufficiency: the mean of ``s(x) − s(only the top-k and the special tokens)`` (lower =
            more faithful).
        aopc: the area over the perturbation curve (higher = more faithful).
        comprehensiveness_at, sufficiency_at: per fraction.
        curve: ``s(x^{(k)})`` at the curve's points ``k`` (:attr:`FaithfulnessResult.curve_tokens`).
    """

    comprehensiveness: float
    sufficiency: float
    aopc: float
    comprehensiveness_at: tuple[float, ...]
    sufficiency_at: tuple[float, ...]
    curve: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"comprehensiveness": self.comprehensiveness, "sufficiency": self.sufficiency,
                "aopc": self.aopc, "comprehensiveness_at": list(self.comprehensiveness_at),
                "sufficiency_at": list(self.sufficiency_at), "curve": list(self.curve)}


@dataclass(frozen=True)
class RandomBaseline:
    """The random rankings' numbers: ``mean[metric]`` and ``std[metric]`` (sample standard
    deviation over the orders; 0 for one order) for metric in ``"comprehensiveness"``,
    ``"sufficiency"``, ``"aopc"``; ``orders`` the random rankings themselves (token positions in
    ``N``, most important first)."""

    mean: dict[str, float]
    std: dict[str, float]
    orders: tuple[tuple[int, ...], ...]
    seed: int
    runs: tuple[Perturbation, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"mean": dict(self.mean), "std": dict(self.std), "seed": self.seed,
                "orders": [list(order) for order in self.orders]}


@dataclass(frozen=True)
class FaithfulnessResult:
    """Faithfulness of several attributions of one subject, beside the random baseline.

    Attributes:
        subject: what was explained.
        output: the score (``"probability"``…; a Similarity target's is the cosine).
        score: ``s(x)``, the full input's score.
        fractions: the fractions; ``tokens_at`` the ``k`` of each.
        removable: ``R``, the tokens that may be deleted.
        curve_tokens: the ``k`` of the perturbation curve's points.
        methods: ``{name: Perturbation}``.
        random: the random baseline.
        rankings: ``{name: token positions in N, most important first}``.
        seconds: ``{name: seconds}`` the attribution took, for methods run here by name.
        attributions: ``{name: Attribution}`` for those given or run as attributions (not for
            bare scores), e.g. to read integrated gradients' ``details``.
    """

    subject: Subject
    output: str
    score: float
    fractions: tuple[float, ...]
    tokens_at: tuple[int, ...]
    removable: int
    curve_tokens: tuple[int, ...]
    methods: dict[str, Perturbation]
    random: RandomBaseline
    rankings: dict[str, tuple[int, ...]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    attributions: dict[str, Attribution] = field(default_factory=dict)

    @property
    def measure(self) -> str:
        """What the scores are: ``output``, or ``"cosine"`` for a Similarity target."""
        return "cosine" if isinstance(self.subject.target, Similarity) else self.output

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: every number, the rankings and the tokens they index."""
        return {"target": self.subject.target_name, "tokens": self.subject.all_tokens(),
                "output": self.output, "measure": self.measure, "score": self.score,
                "fractions": list(self.fractions),
                "tokens_at": list(self.tokens_at), "removable": self.removable,
                "curve_tokens": list(self.curve_tokens),
                "methods": {name: p.to_dict() for name, p in self.methods.items()},
                "random": self.random.to_dict(),
                "rankings": {name: list(r) for name, r in self.rankings.items()},
                "seconds": dict(self.seconds)}

    def table(self) -> str:
        """A plain-text table: one row per method, then the random baseline (mean ± std)."""
        rows = [(name, {m: getattr(p, m) for m in METRICS}, None)
                for name, p in self.methods.items()]
        rows.append(("random", self.random.mean, self.random.std))
        header = (f"{self.subject.target_name}: {self.measure} {self.score:.4f}, "
                  f"{self.removable} removable tokens")
        return header + "\n" + _format_rows(rows)


def faithfulness(subject: Subject, attributions_or_methods, *,
                 fractions: Sequence[float] = FRACTIONS, random_orders: int = 5, seed: int = 0,
                 output: str = "probability", curve: str = "tokens") -> FaithfulnessResult:
    """Comprehensiveness, sufficiency and AOPC of attributions of ``subject``, with the random
    baseline in the same result (see the module docstring for the definitions).

    Args:
        subject: what was explained.
        attributions_or_methods: an :class:`~qkv.explain.Attribution` or a registered method's
            name (run here with its default options), a sequence of them, or a mapping
            ``{name: Attribution | scores (N,) | {options}}`` (options: the registered method
            ``name`` is run with them).
        fractions: fractions of the removable tokens, each in ``(0, 1]``.
        random_orders: random rankings for the baseline (at least 1).
        seed: seeds the random rankings.
        output: ``"probability"`` (default), ``"log_probability"`` or ``"logit"``.
        curve: ``"tokens"`` (the perturbation curve removes one token at a time, every ``k``)
            or ``"fractions"`` (``k = 0`` and the fractions' ``k``).

    Shape:
        attribution scores ``(N,)``, ``N`` the subject's tokens.

    Raises:
        ValueError: no fraction, a fraction outside ``(0, 1]``, ``random_orders < 1``, an
            unknown output or curve, scores of another shape, an attribution of another
            subject, a subject without removable tokens (every token special).

    Example:
        >>> import qkv, torch
        >>> from qkv.explain import subject, faithfulness, Attribution
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=20, d_model=16,
        ...     num_heads=2, num_layers=1, d_ff=32))
        >>> s = subject(model, [1, 5, 6, 7])
        >>> result = faithfulness(s, {"last first": torch.arange(4.0)}, fractions=(0.25, 0.5))
        >>> result.tokens_at, result.curve_tokens
        ((1, 2), (0, 1, 2, 3, 4))
    """
    fractions = _check_fractions(fractions)
    if not isinstance(random_orders, int) or isinstance(random_orders, bool) or random_orders < 1:
        raise ValueError(f"random_orders must be an int >= 1 (random rankings for the baseline), "
                         f"got {random_orders!r}")
    if output not in SCORES:
        raise ValueError(f"output must be one of {', '.join(map(repr, SCORES))}, got {output!r}")
    if curve not in CURVES:
        raise ValueError(f"curve must be one of {', '.join(map(repr, CURVES))}, got {curve!r}")
    special = subject.special.bool().cpu()
    removable = torch.nonzero(~special).flatten()                       # (R,) positions in N
    R = int(removable.numel())
    if R == 0:
        raise ValueError(f"the subject has no removable tokens: all {subject.num_tokens} of "
                         f"its tokens are special ({subject.all_tokens()}), and faithfulness "
                         f"deletes non-special ones")
    scores, seconds, attributions = _method_scores(subject, attributions_or_methods)
    rankings = {name: _ranking(values, removable) for name, values in scores.items()}
    generator = torch.Generator().manual_seed(int(seed))
    randoms = [removable[torch.randperm(R, generator=generator)] for _ in range(random_orders)]
    tokens_at = tuple(max(1, math.ceil(f * R - 1e-9)) for f in fractions)
    curve_tokens = tuple(range(R + 1)) if curve == "tokens" else tuple(sorted({0, *tokens_at}))

    orders = list(rankings.values()) + randoms
    variants, where = [], {}
    for index, order in enumerate(orders):
        for k in sorted(set(curve_tokens[1:]) | set(tokens_at)):
            where[index, "remove", k] = len(variants)
            variants.append(_variant(subject, order, k, keep_top=False))
        for k in sorted(set(tokens_at)):
            where[index, "keep", k] = len(variants)
            variants.append(_variant(subject, order, k, keep_top=True))
    full = float(subject.score(output=output)[0])
    values = subject.score(variants, output=output).tolist() if variants else []

    def perturbation(index: int) -> Perturbation:
        def removed(k: int) -> float:
            return full if k == 0 else values[where[index, "remove", k]]
        comprehensive = tuple(full - removed(k) for k in tokens_at)
        sufficient = tuple(full - values[where[index, "keep", k]] for k in tokens_at)
        points = tuple(removed(k) for k in curve_tokens)
        return Perturbation(statistics.fmean(comprehensive), statistics.fmean(sufficient),
                            statistics.fmean(full - p for p in points), comprehensive,
                            sufficient, points)

    results = [perturbation(index) for index in range(len(orders))]
    methods = dict(zip(rankings, results[: len(rankings)]))
    runs = tuple(results[len(rankings):])
    random = RandomBaseline(
        mean={m: statistics.fmean(getattr(r, m) for r in runs) for m in METRICS},
        std={m: statistics.stdev([getattr(r, m) for r in runs]) if len(runs) > 1 else 0.0
             for m in METRICS},
        orders=tuple(tuple(o.tolist()) for o in randoms), seed=int(seed), runs=runs)
    return FaithfulnessResult(subject, output, full, fractions, tokens_at, R, curve_tokens,
                              methods, random,
                              {name: tuple(r.tolist()) for name, r in rankings.items()}, seconds,
                              attributions)


# -- many subjects ---------------------------------------------------------------------------

@dataclass(frozen=True)
class FaithfulnessTable:
    """Faithfulness averaged over subjects: one row per method, and the random baseline.

    Attributes:
        rows: ``{method: {"comprehensiveness", "sufficiency", "aopc": mean over subjects,
            "beats_random": share of subjects whose comprehensiveness beats the random mean,
            "seconds": mean attribution time, "subjects": how many}}``.
        random: ``{"comprehensiveness", "sufficiency", "aopc": mean over subjects of the random
            mean; "<metric>_std": mean over subjects of the random std}``.
        results: the per-subject :class:`FaithfulnessResult`\\ s.
        errors: ``{method: [message, …]}`` of subjects a method failed on (``on_error="skip"``).
    """

    rows: dict[str, dict[str, float]]
    random: dict[str, float]
    results: tuple[FaithfulnessResult, ...]
    errors: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self, *, subjects: bool = False) -> dict[str, Any]:
        """JSON-able rows and random baseline (and every subject's result with ``subjects``)."""
        data: dict[str, Any] = {"rows": {k: dict(v) for k, v in self.rows.items()},
                                "random": dict(self.random), "subjects": len(self.results),
                                "errors": {k: list(v) for k, v in self.errors.items()}}
        if subjects:
            data["results"] = [result.to_dict() for result in self.results]
        return data

    def format(self) -> str:
        """A plain-text table (↑ = higher is more faithful, ↓ = lower is)."""
        rows = [(name, row, None, row.get("beats_random"), row.get("seconds"))
                for name, row in self.rows.items()]
        rows.append(("random", self.random,
                     {m: self.random[m + "_std"] for m in METRICS}, None, None))
        return _format_rows(rows, extra=True)

    __str__ = format


def faithfulness_table(subjects: Sequence[Subject], methods, *,
                       fractions: Sequence[float] = FRACTIONS, random_orders: int = 5,
                       seed: int = 0, output: str = "probability", curve: str = "tokens",
                       on_error: str = "raise") -> FaithfulnessTable:
    """:func:`faithfulness` of every subject, averaged: one row per method.

    Args:
        subjects: the subjects (e.g. one per test sentence).
        methods: registered method names, or ``{name: {options}}``.
        fractions, random_orders, seed, output, curve: as :func:`faithfulness` (each subject's
            random orders are drawn with ``seed + its index``).
        on_error: ``"raise"`` (default) or ``"skip"``: a method that fails on a subject is left
            out of that subject's numbers and its error kept in :attr:`FaithfulnessTable.errors`.

    Raises:
        ValueError: no subjects, no methods, an unknown ``on_error``; as :func:`faithfulness`.
    """
    subjects = list(subjects)
    if not subjects:
        raise ValueError("faithfulness_table needs at least one subject, got none")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    specs = ({name: {} for name in ([methods] if isinstance(methods, str) else methods)}
             if not isinstance(methods, Mapping) else dict(methods))
    if not specs:
        raise ValueError("faithfulness_table needs at least one method, got none")
    results, errors = [], {}
    for index, subject in enumerate(subjects):
        attributions: dict[str, Any] = {}
        seconds: dict[str, float] = {}
        for name, options in specs.items():
            started = time.perf_counter()
            try:
                attributions[name] = attribute(subject, name, **dict(options))
            except Exception as error:  # noqa: BLE001 - reported, by the caller's choice
                if on_error == "raise":
                    raise
                errors.setdefault(name, []).append(f"subject {index}: "
                                                   f"{type(error).__name__}: {error}")
                continue
            seconds[name] = time.perf_counter() - started
        result = faithfulness(subject, attributions, fractions=fractions,
                              random_orders=random_orders, seed=seed + index, output=output,
                              curve=curve)
        results.append(dataclasses.replace(result, seconds=seconds))
    rows = {}
    for name in specs:
        mine = [r for r in results if name in r.methods]
        if not mine:
            continue
        rows[name] = {m: statistics.fmean(getattr(r.methods[name], m) for r in mine)
                      for m in METRICS}
        rows[name]["beats_random"] = statistics.fmean(
            float(r.methods[name].comprehensiveness > r.random.mean["comprehensiveness"])
            for r in mine)
        rows[name]["seconds"] = statistics.fmean(r.seconds[name] for r in mine)
        rows[name]["subjects"] = len(mine)
    random = {m: statistics.fmean(r.random.mean[m] for r in results) for m in METRICS}
    random.update({m + "_std": statistics.fmean(r.random.std[m] for r in results)
                   for m in METRICS})
    return FaithfulnessTable(rows, random, tuple(results), errors)


# -- pieces ----------------------------------------------------------------------------------

def _check_fractions(fractions) -> tuple[float, ...]:
    if isinstance(fractions, (int, float)) or not isinstance(fractions, Sequence):
        raise ValueError(f"fractions must be a sequence of numbers in (0, 1], got {fractions!r}")
    fractions = tuple(fractions)
    if not fractions:
        raise ValueError("fractions must name at least one fraction in (0, 1], got none")
    for f in fractions:
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1:
            raise ValueError(f"each fraction must be a number in (0, 1] (a share of the "
                             f"removable tokens), got {f!r} in {fractions}")
    return tuple(float(f) for f in fractions)


def _method_scores(subject: Subject, given
                   ) -> tuple[dict[str, Tensor], dict[str, float], dict[str, Attribution]]:
    """``{name: (N,) scores}``, the seconds of the methods run here, the attributions."""
    if isinstance(given, (Attribution, str)):
        given = [given]
    if isinstance(given, Mapping):
        items = list(given.items())
    elif isinstance(given, Sequence):
        items = [(g.method if isinstance(g, Attribution) else g, g) for g in given]
    else:
        raise TypeError(f"attributions_or_methods must be an Attribution, a method name, a "
                        f"sequence of them or a mapping name → Attribution | scores | options, "
                        f"got {type(given).__name__}")
    if not items:
        raise ValueError("give at least one attribution or method to measure, got none")
    scores, seconds, attributions = {}, {}, {}
    N = subject.num_tokens
    for name, value in items:
        if name in scores:
            raise ValueError(f"two attributions are named {name!r}: give them distinct names "
                             f"(a mapping name → attribution)")
        if isinstance(value, (str, Mapping)):
            method, options = (value, {}) if isinstance(value, str) else (name, dict(value))
            started = time.perf_counter()
            value = attribute(subject, method, **options)
            seconds[name] = time.perf_counter() - started
        if isinstance(value, Attribution):
            if value.subject is not subject and not _same_input(value.subject, subject):
                raise ValueError(f"the attribution {name!r} explains another input than the "
                                 f"subject's ({value.subject.all_tokens()} vs "
                                 f"{subject.all_tokens()})")
            attributions[name] = value
            value = value.scores
        if not isinstance(value, Tensor):
            raise TypeError(f"{name!r}: expected an Attribution, a (N,) tensor of scores, a "
                            f"method name or options, got {type(value).__name__}")
        if value.shape != (N,):
            raise ValueError(f"{name!r}: scores must have shape (N,) = ({N},), the subject's "
                             f"tokens, got {shape_str(value.shape)}")
        values = value.detach().float().cpu()
        if not bool(torch.isfinite(values).all()):
            raise ValueError(f"{name!r}: scores must be finite, got {values.tolist()}")
        scores[name] = values
    return scores, seconds, attributions


def _same_input(a: Subject, b: Subject) -> bool:
    return a.sides == b.sides and all(torch.equal(a.ids[s], b.ids[s]) for s in a.sides) and (
        a.target == b.target if not hasattr(a.target, "reference") else True)


def _ranking(scores: Tensor, removable: Tensor) -> Tensor:
    """The removable positions, highest score first; ties in position order. ``(R,)``."""
    order = torch.sort(scores[removable], descending=True, stable=True).indices
    return removable[order]


def _variant(subject: Subject, order: Tensor, k: int, *, keep_top: bool) -> dict[str, Tensor]:
    """The input without ``order[:k]`` (``keep_top=False``), or with only ``order[:k]`` and
    the special tokens (``keep_top=True``), by side."""
    N = subject.num_tokens
    top = torch.zeros(N, dtype=torch.bool)
    top[order[:k]] = True
    keep = (top | subject.special.bool().cpu()) if keep_top else ~top   # (N,)
    rank = torch.full((N,), N, dtype=torch.long)
    rank[order] = torch.arange(order.numel())                           # position in the order
    variant = {}
    offset = 0
    for side in subject.sides:
        ids = subject.ids[side]
        T = int(ids.shape[0])
        mine = keep[offset: offset + T].clone()
        if not bool(mine.any()):                       # a side never goes empty
            ranks = rank[offset: offset + T]
            mine[int(ranks.argmin() if keep_top else ranks.argmax())] = True
        variant[side] = ids[mine]
        offset += T
    return variant


def _format_rows(rows, *, extra: bool = False) -> str:
    """``rows``: ``(name, {metric: mean}, {metric: std} | None[, beats, seconds])``."""
    names = [row[0] for row in rows]
    width = max(len("method"), *(len(n) for n in names))
    head = f"{'method':{width}}  {'compr. ↑':>17}  {'suff. ↓':>17}  {'AOPC ↑':>17}"
    if extra:
        head += f"  {'> random':>8}  {'seconds':>8}"
    lines = [head, "-" * len(head)]
    for row in rows:
        name, means, stds = row[:3]
        cells = []
        for m in METRICS:
            text = f"{means[m]:+.4f}"
            if stds is not None:
                text += f" ± {stds[m]:.4f}"
            cells.append(f"{text:>17}")
        line = f"{name:{width}}  " + "  ".join(cells)
        if extra:
            beats, seconds = row[3], row[4]
            line += f"  {'' if beats is None else f'{beats:.0%}':>8}"
            line += f"  {'' if seconds is None else f'{seconds:.3f}':>8}"
        lines.append(line)
    return "\n".join(lines)
