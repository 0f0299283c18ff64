"""Activation patching: which activation carries the information the output needs?

Run the model on a *clean* input and on a *corrupted* one that changes its answer; then run the
corrupted input again with one activation replaced by its value in the clean run. If that alone
brings the clean answer back, the activation carries what the corruption destroyed.

* Meng, Bau, Andonian & Belinkov, 2022, "Locating and Editing Factual Associations in GPT"
  (causal tracing: the residual stream at each layer and position, corruption by Gaussian noise
  on the subject's token embeddings);
* Wang, Variengien, Conmy, Shlegeris & Steinhardt, 2022, "Interpretability in the Wild: a
  Circuit for Indirect Object Identification in GPT-2 small" (heads, logit difference of the
  target against a foil token).

The places are :class:`~qkv.explain.interventions.Site` s (a head's slice of the merged heads
before W^O, an attention module's output, a feed-forward network's output, the residual stream
after a layer — at one position or all). Clean and corrupted inputs must have the same number of
tokens (per side): an activation is copied position by position, and position ``t`` of one run
only means the same place in the other if the sequences line up.

* :func:`patch` / :func:`patched`: the plain-model API (any inputs, any metric);
* :func:`patching_sweep`: every layer × position (× head) of a subject, as the restored fraction
  ``(patched − corrupted) / (clean − corrupted)`` of the target's score; the ``"patch"`` analysis.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from qkv._checks import shape_str
from qkv.explain.analysis import register_analysis
from qkv.explain.interventions import (
    Site,
    _check_site,
    _Edit,
    _hooked,
    _point,
    _recording,
    _check_output,
    score_edited,
    sites_of,
    subject_scores,
    to_json,
)
from qkv.explain.subject import Subject, eval_mode, token_embedding_module
from qkv.models import EncoderModel, LanguageModel, SequenceClassifier, Transformer

__all__ = ["PatchResult", "patch", "patched", "logit_difference", "target_probability",
           "Corruption", "corrupt", "PatchingSweep", "patching_sweep", "SWEEP_SITES"]

SWEEP_SITES = ("residual", "attention", "mlp", "head")
CORRUPTIONS = ("replace", "noise")
Metric = Callable[[Tensor], Tensor]


# -- metrics on a model's output ---------------------------------------------------------------


def logit_difference(target: int, foil: int, *, position: int = -1) -> Metric:
    """``logit[target] − logit[foil]`` at ``position`` (Wang et al., 2022, "Interpretability in
    the Wild"): the model's preference for the target over one alternative.

    Works on a classifier's logits ``(B, C)`` (``position`` ignored) and on a language model's or
    translation's ``(B, T, V)``; returns ``(B,)``.
    """
    def metric(logits: Tensor) -> Tensor:
        row = logits if logits.dim() == 2 else logits[:, position]      # (B, C|V)
        return row[:, target].float() - row[:, foil].float()
    return metric


def target_probability(target: int, *, position: int = -1) -> Metric:
    """``softmax(logits)[target]`` at ``position`` (Meng et al., 2022): ``(B, C)`` or
    ``(B, T, V)`` logits → ``(B,)``."""
    def metric(logits: Tensor) -> Tensor:
        row = logits if logits.dim() == 2 else logits[:, position]      # (B, C|V)
        return torch.softmax(row.float(), dim=-1)[:, target]
    return metric


@dataclass(frozen=True)
class PatchResult:
    """The metric on the clean run, the corrupted run and the patched corrupted run."""

    clean: float
    corrupted: float
    patched: float

    @property
    def change(self) -> float:
        """``patched − corrupted``: what the patch moved."""
        return self.patched - self.corrupted

    @property
    def restored(self) -> float:
        """``(patched − corrupted) / (clean − corrupted)``: 1 = the clean output is back, 0 = no
        effect; NaN if the corruption did not change the metric."""
        gap = self.clean - self.corrupted
        return math.nan if gap == 0 else (self.patched - self.corrupted) / gap


# -- the plain-model API -----------------------------------------------------------------------


def _model_args(model: nn.Module, inputs, name: str) -> tuple[Tensor, ...]:
    """A model's positional inputs as ``(B, T)`` id tensors on its device: ``(source, target)``
    for a :class:`~qkv.Transformer`, ``(ids,)`` otherwise."""
    if isinstance(model, Transformer):
        if isinstance(inputs, Mapping):
            if set(inputs) != {"source", "target"}:
                raise ValueError(f"{name} for a translation is {{'source': ids, 'target': ids}}, "
                                 f"got the keys {sorted(inputs)}")
            inputs = (inputs["source"], inputs["target"])
        if not isinstance(inputs, (tuple, list)) or len(inputs) != 2:
            raise ValueError(f"{name} for a translation is (source ids, target ids) or "
                             f"{{'source': …, 'target': …}}, got {type(inputs).__name__}")
        parts = list(inputs)
    else:
        if isinstance(inputs, Mapping):
            inputs = inputs.get("text", inputs)
        parts = [inputs]
    device = next(model.parameters()).device
    tensors = []
    for part in parts:
        tensor = part if isinstance(part, Tensor) else torch.tensor(list(part), dtype=torch.long)
        if tensor.is_floating_point() or tensor.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer token ids, got {tensor.dtype}")
        tensor = tensor[None] if tensor.dim() == 1 else tensor
        if tensor.dim() != 2:
            raise ValueError(f"{name} must be ids (T,) or (B, T), got {shape_str(tensor.shape)}")
        tensors.append(tensor.long().to(device))
    return tuple(tensors)


def _check_same_lengths(clean: Sequence[Tensor], corrupted: Sequence[Tensor],
                        sides: Sequence[str]) -> None:
    for side, a, b in zip(sides, clean, corrupted):
        if a.shape[-1] != b.shape[-1]:
            raise ValueError(
                f"activation patching copies the clean run's activation at each position into "
                f"the corrupted run at the same position, so both inputs need the same number of "
                f"tokens per side; the {side} has {a.shape[-1]} clean and {b.shape[-1]} "
                f"corrupted tokens. Corrupt by replacing tokens, not by adding or removing them")


def _check_sites(model: nn.Module, sites) -> list[Site]:
    sites = [sites] if isinstance(sites, Site) else list(sites)
    if not sites:
        raise ValueError("give at least one site to patch")
    return [_check_site(model, site) for site in sites]


@contextlib.contextmanager
def patched(model: nn.Module, clean_inputs, sites: Site | Sequence[Site]) -> Iterator[
        dict[Site, Tensor]]:
    """Inside the block, every call of the model has ``sites``' activations replaced by their
    values on ``clean_inputs`` (recorded on entry, in eval mode).

    Meng et al., 2022, "Locating and Editing Factual Associations in GPT"; Wang et al., 2022,
    "Interpretability in the Wild". The inputs run inside must have as many positions as the
    clean ones (a ValueError otherwise).

    Args:
        model: a qkv model.
        clean_inputs: its input: ids ``(T,)`` / ``(1, T)``, or ``(source, target)`` /
            ``{"source", "target"}`` for a translation.
        sites: where to patch.

    Yields:
        ``{site: the recorded clean activation (1, T, F)}`` (the full width of the site's place,
        e.g. all merged heads for a head site).

    Example:
        >>> import torch, qkv
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=10, d_model=8,
        ...     num_heads=2, num_layers=2, d_ff=16)).eval()
        >>> clean, corrupted = torch.tensor([[1, 2, 3]]), torch.tensor([[1, 5, 3]])
        >>> with patched(model, clean, Site("residual", "layers.1")):
        ...     restored = model(corrupted)
        >>> torch.allclose(restored, model(clean))
        True
    """
    sites = _check_sites(model, sites)
    args = _model_args(model, clean_inputs, "clean_inputs")
    with eval_mode(model), torch.no_grad(), _recording(model, sites) as record:
        model(*args)
    recorded = {site: record[_point(site)] for site in sites}
    with _hooked(model, [_Edit(site, value) for site, value in recorded.items()]):
        yield recorded


def patch(model: nn.Module, clean_inputs, corrupted_inputs, sites: Site | Sequence[Site],
          metric: Metric) -> PatchResult:
    """Activation patching on a plain model: the metric on the clean run, on the corrupted run,
    and on the corrupted run with ``sites`` patched from the clean one.

    Meng et al., 2022, "Locating and Editing Factual Associations in GPT"; Wang et al., 2022,
    "Interpretability in the Wild: a Circuit for Indirect Object Identification in GPT-2 small".

    Args:
        model: a qkv model (run in eval mode, its mode restored after).
        clean_inputs, corrupted_inputs: one input each, as :func:`patched`; the same number of
            tokens (per side).
        sites: where to patch.
        metric: the model's output → ``(1,)`` (or a scalar): e.g. :func:`logit_difference`,
            :func:`target_probability`.

    Raises:
        ValueError: inputs of different lengths (patching copies position by position), a
            batch of more than one, an unknown site.

    Example:
        >>> import torch, qkv
        >>> model = qkv.SequenceClassifier(qkv.SequenceClassifierConfig(vocab_size=10,
        ...     d_model=8, num_heads=2, num_layers=2, d_ff=16, labels=["a", "b"]))
        >>> result = patch(model, [1, 2, 3], [1, 4, 3], Site("residual", "encoder.layers.1"),
        ...                logit_difference(0, 1))
        >>> abs(result.patched - result.clean) < 1e-5                   # everything restored
        True
    """
    sites = _check_sites(model, sites)
    clean = _model_args(model, clean_inputs, "clean_inputs")
    corrupted = _model_args(model, corrupted_inputs, "corrupted_inputs")
    sides = ("source", "target") if len(clean) == 2 else ("text",)
    _check_same_lengths(clean, corrupted, sides)
    if any(t.shape[0] != 1 for t in (*clean, *corrupted)):
        raise ValueError("patch compares one clean and one corrupted input: give batches of one")
    if not callable(metric):
        raise TypeError(f"metric must be a function of the model's output, got "
                        f"{type(metric).__name__}")

    def value(output: Tensor) -> float:
        result = metric(output)
        result = torch.as_tensor(result)
        if result.numel() != 1:
            raise ValueError(f"metric must return one number (or (1,)), got "
                             f"{shape_str(result.shape)}")
        return float(result.reshape(()))

    with eval_mode(model), torch.no_grad():
        with _recording(model, sites) as record:
            clean_score = value(model(*clean))
        corrupted_score = value(model(*corrupted))
        with _hooked(model, [_Edit(site, record[_point(site)]) for site in sites]):
            patched_score = value(model(*corrupted))
    return PatchResult(clean_score, corrupted_score, patched_score)


# -- corruptions of a subject's input ----------------------------------------------------------


@dataclass(frozen=True)
class Corruption:
    """A corrupted version of a subject's input, of the same lengths.

    Attributes:
        ids: ``{side: (T_side,)}``.
        embeddings: ``{side: (1, T_side, E)}`` token embeddings to use instead of the ids'
            (Gaussian noise), or ``None``.
        positions: the corrupted tokens, as indices into the subject's ``N`` tokens.
        description: in words, e.g. ``"'dog' → id 0"``.
    """

    ids: dict[str, Tensor]
    embeddings: dict[str, Tensor] | None = None
    positions: tuple[int, ...] = ()
    description: str = ""


def corrupt(subject: Subject, how: str = "replace", *, positions: Sequence[int] | None = None,
            replacement: int | None = None, noise: float = 3.0, seed: int = 0,
            tokenizer=None, output: str = "log_probability") -> Corruption:
    """A corruption of the subject's input that keeps its length (and its padding mask).

    Args:
        how: ``"replace"``: the tokens at ``positions`` are replaced (see ``replacement``);
            ``"noise"`` (Meng et al., 2022): Gaussian noise of standard deviation ``noise · σ``
            is added to their token embeddings, ``σ`` the standard deviation of the embedding
            matrix' entries (Meng et al. use 3σ of embeddings observed over a corpus).
        positions: indices into the subject's ``N`` tokens (sides concatenated); default: the
            one non-special token whose replacement lowers the target's score (``output``) the
            most — a one-step occlusion search over the tokens.
        replacement: the id put in. Default: the tokenizer's unknown-token id where there is
            one; otherwise (no tokenizer given, or none as GPT-2's) the nearest other
            non-special token of the same side with another id — a swap, as Wang et al. swap
            names. Never the padding id: a padding token is masked out of attention, which
            would change the masks, not only a token, and no activation patch could undo that.
        seed: of the noise.

    Raises:
        ValueError: no token that can be corrupted (all special), a position out of range, a
            replacement outside the vocabulary.

    Example:
        >>> import torch, qkv
        >>> from qkv.explain import subject
        >>> model = qkv.SequenceClassifier(qkv.SequenceClassifierConfig(vocab_size=10,
        ...     d_model=8, num_heads=2, num_layers=1, d_ff=16, labels=["a", "b"]))
        >>> corrupted = corrupt(subject(model, [4, 5, 6]), positions=[1])
        >>> corrupted.ids["text"].tolist(), corrupted.description
        ([4, 4, 6], "'5' → '4'")
    """
    if how not in CORRUPTIONS:
        raise ValueError(f"how must be one of {CORRUPTIONS}, got {how!r}")
    _check_output(output)
    N = subject.num_tokens
    flat = torch.cat([subject.ids[side] for side in subject.sides]).tolist()   # N ids
    names = subject.all_tokens()
    offsets = _offsets(subject)
    side_of = [side for side in subject.sides for _ in range(int(subject.ids[side].shape[0]))]
    fixed = {side: _fixed_replacement(subject, side, replacement, tokenizer)
             for side in subject.sides}

    def replacing(n: int) -> tuple[int, str]:
        """The id put at ``n`` and its name."""
        side = side_of[n]
        if fixed[side] is not None:
            id_ = fixed[side]
            return id_, (tokenizer.tokens([id_])[0] if tokenizer is not None else str(id_))
        for distance in range(1, N):
            for m in (n - distance, n + distance):
                if 0 <= m < N and side_of[m] == side and not bool(subject.special[m]) and (
                        flat[m] != flat[n]):
                    return flat[m], names[m]
        pad = subject.model.config.pad_id
        id_ = next(i for i in range(3) if i != pad and i != flat[n])
        return id_, str(id_)

    if positions is None:
        candidates = [n for n in range(N) if not bool(subject.special[n])
                      and replacing(n)[0] != flat[n]]
        if not candidates:
            raise ValueError("nothing to corrupt: every token is special or already the "
                             "replacement; give corrupted ids or text of the same length")
        variants = [_replaced(subject, {n: replacing(n)[0]}, offsets) for n in candidates]
        scores = subject.score(variants, output=output)                 # (K,)
        positions = [candidates[int(scores.argmin())]]
    positions = [int(p) for p in positions]
    if not positions or any(not 0 <= p < N for p in positions):
        raise ValueError(f"positions must be indices in [0, {N}) of the subject's tokens, got "
                         f"{positions!r}")
    if how == "replace":
        chosen = {p: replacing(p) for p in positions}
        ids = _replaced(subject, {p: id_ for p, (id_, _) in chosen.items()}, offsets)
        description = "; ".join(f"{names[p]!r} → {name!r}" for p, (_, name) in chosen.items())
        return Corruption(ids, None, tuple(positions), description)
    generator = torch.Generator().manual_seed(seed)
    embeddings = {}
    for side, embedding in zip(subject.sides, subject.token_embeddings()):
        sigma = float(token_embedding_module(subject.model, side).weight.detach().float().std())
        noisy = embedding.clone()                                       # (1, T_side, E)
        for p in positions:
            if side_of[p] == side:
                noisy[0, p - offsets[side]] += (noise * sigma * torch.randn(
                    noisy.shape[-1], generator=generator)).to(noisy)
        embeddings[side] = noisy
    words = ", ".join(repr(names[p]) for p in positions)
    return Corruption(dict(subject.ids), embeddings, tuple(positions),
                      f"Gaussian noise ({noise:g}σ) on {words}")


def _offsets(subject: Subject) -> dict[str, int]:
    offsets, start = {}, 0
    for side in subject.sides:
        offsets[side] = start
        start += int(subject.ids[side].shape[0])
    return offsets


def _fixed_replacement(subject: Subject, side: str, replacement: int | None,
                       tokenizer) -> int | None:
    """The given replacement id, else the tokenizer's unknown id (not the padding id), checked
    against the side's vocabulary; ``None``: swap with a neighbour."""
    model = subject.model
    vocab = model.config.target_vocab_size if side == "target" else model.config.vocab_size
    if replacement is None:
        unk = getattr(tokenizer, "unk_id", None)
        if unk is None or unk == model.config.pad_id or unk >= vocab:
            return None
        return unk
    if isinstance(replacement, bool) or not isinstance(replacement, int) or not (
            0 <= replacement < vocab):
        raise ValueError(f"replacement must be a token id in [0, {vocab}) for the {side}, got "
                         f"{replacement!r}")
    return replacement


def _replaced(subject: Subject, replacements: Mapping[int, int],
              offsets: Mapping[str, int]) -> dict[str, Tensor]:
    """The subject's ids with token ``n`` (of the ``N``) set to ``replacements[n]``."""
    ids = {side: value.clone() for side, value in subject.ids.items()}
    for n, id_ in replacements.items():
        side = next(side for side in reversed(subject.sides) if n >= offsets[side])
        ids[side][n - offsets[side]] = id_
    return ids


def _corruption(subject: Subject, corrupted, *, how: str, tokenizer, replacement, seed,
                output) -> Corruption:
    """Whatever the caller gave as the corrupted input, as a :class:`Corruption`."""
    if corrupted is None:
        return corrupt(subject, how, tokenizer=tokenizer, replacement=replacement, seed=seed,
                       output=output)
    if isinstance(corrupted, Corruption):
        ids, result = corrupted.ids, corrupted
    else:
        if isinstance(corrupted, str):
            corrupted = _text_ids(subject, corrupted, tokenizer)
        if not isinstance(corrupted, Mapping):
            if subject.sides != ("text",):
                raise ValueError("a translation's corrupted input is {'source': ids, 'target': "
                                 "ids} (or a text, which replaces the source)")
            corrupted = {"text": corrupted}
        if set(corrupted) != set(subject.sides):
            raise ValueError(f"corrupted ids must have the sides {list(subject.sides)}, got "
                             f"{sorted(corrupted)}")
        ids = {side: (value if isinstance(value, Tensor) else torch.tensor(
            list(value), dtype=torch.long)).long().reshape(-1).cpu()
            for side, value in corrupted.items()}
        ids = {side: ids[side] for side in subject.sides}
        result = None
    clean = [subject.ids[side] for side in subject.sides]
    _check_same_lengths(clean, [ids[side] for side in subject.sides], subject.sides)
    if result is None:
        flat_clean = torch.cat(clean)
        flat = torch.cat([ids[side] for side in subject.sides])
        changed = tuple(int(n) for n in (flat != flat_clean).nonzero().flatten())
        names = subject.all_tokens()
        shown = [str(int(flat[n])) for n in changed]
        if tokenizer is not None:
            shown = [tokenizer.tokens([int(flat[n])])[0] for n in changed]
        description = "; ".join(f"{names[n]!r} → {s!r}" for n, s in zip(changed, shown))
        result = Corruption(ids, None, changed, description or "the same input")
    return result


def _text_ids(subject: Subject, text: str, tokenizer) -> dict[str, list[int]] | list[int]:
    if tokenizer is None:
        raise ValueError("a corrupted text needs tokenizer= (or give corrupted ids)")
    model = subject.model
    if isinstance(model, Transformer):                                  # the source side
        return {"source": tokenizer.encode(text) + [tokenizer.eos_id],
                "target": subject.ids["target"]}
    from qkv.views.explore import model_inputs

    task = {SequenceClassifier: "classification", LanguageModel: "language_model",
            EncoderModel: "encoder"}[next(cls for cls in (SequenceClassifier, LanguageModel,
                                                          EncoderModel) if isinstance(model, cls))]
    return model_inputs(model, task=task, source_tokenizer=tokenizer, text=text)["text"]


# -- the sweep over a subject ------------------------------------------------------------------


@dataclass(frozen=True)
class PatchingSweep:
    """Patching every layer × position (× head) of a subject, one at a time.

    Attributes:
        site: ``"residual"``, ``"attention"``, ``"mlp"`` or ``"head"``.
        over: the axes after the rows: ``("layer", "position")``, ``("layer", "head")``,
            ``("layer", "position", "head")`` or ``("layer",)``.
        rows: the modules patched, in the model's order (``R``; for a translation the
            encoder's, then the decoder's).
        tokens: the subject's ``N`` tokens (the position axis: sides concatenated; an encoder
            row patches source positions only, a decoder row target positions).
        num_heads: ``H`` (head sweeps).
        clean, corrupted: the target's score on the clean and the corrupted input.
        scores: the patched score: ``(R, N)``, ``(R, H)``, ``(R, N, H)`` or ``(R,)``; NaN
            where the cell does not exist.
        output: which score; ``foil``: if set, the score is ``logit(target) − logit(foil)``.
        corruption: what was corrupted.
    """

    site: str
    over: tuple[str, ...]
    rows: list[str]
    tokens: list[str]
    num_heads: int | None
    clean: float
    corrupted: float
    scores: Tensor
    output: str
    foil: int | None
    corruption: Corruption
    target: str = ""
    note: str | None = field(default=None)

    @property
    def restored(self) -> Tensor:
        """``(patched − corrupted) / (clean − corrupted)``, shaped as :attr:`scores`: 1 = the
        patch alone brings the clean score back; all NaN if the corruption changed nothing."""
        gap = self.clean - self.corrupted
        if gap == 0:
            return torch.full_like(self.scores, math.nan)
        return (self.scores - self.corrupted) / gap

    def to_dict(self) -> dict[str, Any]:
        """The ``"patch"`` report (JSON-able; NaN as ``None``)."""
        return {
            "kind": "patch", "target": self.target, "site": self.site, "over": list(self.over),
            "output": self.output if self.foil is None else "logit_difference",
            "foil": self.foil, "rows": list(self.rows), "tokens": list(self.tokens),
            "num_heads": self.num_heads, "clean": self.clean, "corrupted": self.corrupted,
            "corruption": {"description": self.corruption.description,
                           "positions": list(self.corruption.positions),
                           "noise": self.corruption.embeddings is not None},
            "restored": to_json(self.restored), "scores": to_json(self.scores),
            "note": self.note,
        }


def _check_over(site: str, over) -> tuple[str, ...]:
    if site not in SWEEP_SITES:
        raise ValueError(f"site must be one of {SWEEP_SITES}, got {site!r}")
    if over is None:
        return ("layer", "head") if site == "head" else ("layer", "position")
    if isinstance(over, str):
        over = tuple(part.strip() for part in over.split(","))
    over = tuple(over)
    allowed = ([("layer", "head"), ("layer", "position", "head")] if site == "head"
               else [("layer",), ("layer", "position")])
    if over not in allowed:
        raise ValueError(f"over for a {site!r} site must be one of {allowed}, got {over!r}")
    return over


@torch.no_grad()
def patching_sweep(subject: Subject, corrupted_ids=None, *, over=None, site: str = "residual",
                   output: str = "log_probability", foil: int | None = None,
                   how: str = "replace", tokenizer=None, replacement: int | None = None,
                   seed: int = 0, batch_size: int = 32) -> PatchingSweep:
    """Patch each place of one kind, one at a time, from the clean run into the corrupted one.

    Causal tracing (Meng, Bau, Andonian & Belinkov, 2022, "Locating and Editing Factual
    Associations in GPT") over layers × positions, and head patching (Wang, Variengien, Conmy,
    Shlegeris & Steinhardt, 2022, "Interpretability in the Wild") over layers × heads. The
    patched runs go in batches of ``batch_size`` copies of the corrupted input, each copy with its
    own patch.

    Args:
        subject: the clean input and the target.
        corrupted_ids: the corrupted input, of the subject's lengths: ids (by side, like the
            subject's), a text (with ``tokenizer``; for a translation it replaces the source),
            a :class:`Corruption`, or ``None``: :func:`corrupt` (``how``, ``replacement``,
            ``seed``) — the most important non-special token replaced.
        over: the axes, see :class:`PatchingSweep`; default ``("layer", "position")``, for a
            head site ``("layer", "head")``.
        site: ``"residual"`` (the stream after each layer), ``"attention"`` (each attention
            module's output), ``"mlp"`` (each feed-forward output) or ``"head"``.
        output: the score (``"log_probability"`` by default: it does not saturate near 1);
            with ``foil`` the logit difference ``logit(target) − logit(foil)`` instead.

    Shape:
        ``scores``/``restored``: ``(R, N)``, ``(R, H)``, ``(R, N, H)`` or ``(R,)``

    Raises:
        ValueError: a corrupted input of other lengths, an unknown site or axes.
    """
    over = _check_over(site, over)
    _check_output(output)
    corruption = _corruption(subject, corrupted_ids, how=how, tokenizer=tokenizer,
                             replacement=replacement, seed=seed, output=output)
    model = subject.model
    kind = "head" if site == "head" else site
    rows = sites_of(model, kind)
    heads = max(model.get_submodule(name).num_heads for name in rows) if site == "head" else None
    sites = [Site(kind, name, head=0 if site == "head" else None) for name in rows]
    with eval_mode(model), _recording(model, sites) as record:
        clean = float(subject_scores(subject, subject.ids, 1, output=output, foil=foil)[0])
    recorded = {name: record[_point(s)] for name, s in zip(rows, sites)}
    corrupted = float(subject_scores(subject, corruption.ids, 1, output=output, foil=foil,
                                     embeddings=corruption.embeddings)[0])
    offsets, N = _offsets(subject), subject.num_tokens
    variants: list[list[_Edit] | None] = []
    for name in rows:
        side = _side_of(subject, name)
        T = int(subject.ids[side].shape[0])
        head_range = range(heads) if "head" in over else [None]
        H_row = model.get_submodule(name).num_heads if site == "head" else None
        positions = range(N) if "position" in over else [None]
        for n in positions:
            for h in head_range:
                local = None if n is None else n - offsets[side]
                if (local is not None and not 0 <= local < T) or (
                        h is not None and h >= H_row):
                    variants.append(None)
                    continue
                variants.append([_Edit(Site(kind, name, head=h, position=local),
                                       recorded[name])])
    scores = score_edited(subject, variants, output=output, ids=corruption.ids,
                          embeddings=corruption.embeddings, foil=foil, batch_size=batch_size)
    shape = [len(rows)] + [N] * ("position" in over) + [heads] * ("head" in over)
    note = None
    if clean == corrupted:
        note = ("the corruption does not change the target's score, so nothing can be "
                "restored: corrupt another token (corrupted=…)")
    return PatchingSweep(site, over, rows, subject.all_tokens(), heads, clean, corrupted,
                         scores.view(*shape), output, foil, corruption, subject.target_name,
                         note)


def _side_of(subject: Subject, name: str) -> str:
    if "text" in subject.ids:
        return "text"
    return "source" if name.startswith("encoder.") else "target"


# -- the registered analysis -------------------------------------------------------------------


def _patch_analysis_html(report: dict) -> str:
    from qkv.views.patching import patching_html
    return patching_html(report)


def _patch_analysis_png(report: dict, path) -> None:
    from qkv.views.patching import save_patching_figure
    save_patching_figure(report, path)


@register_analysis("patch", html=_patch_analysis_html, png=_patch_analysis_png)
def run_patch(subject: Subject, *, corrupted=None, site: str = "residual", over=None,
              corruption: str = "replace", output: str = "log_probability",
              foil: int | None = None, tokenizer=None, replacement: int | None = None,
              seed: int = 0, batch_size: int = 32) -> dict:
    """The ``"patch"`` analysis: :func:`patching_sweep` as a report.

    Options: ``corrupted`` (text — with ``tokenizer`` — or ids; default: the most important
    non-special token replaced by the unknown/padding token, see :func:`corrupt`), ``corruption``
    (``"replace"`` or ``"noise"``: Meng et al.'s Gaussian noise on that token's embedding),
    ``site`` (``"residual"``, ``"attention"``, ``"mlp"``, ``"head"``), ``over``, ``output``,
    ``foil``.
    """
    return patching_sweep(subject, corrupted, over=over, site=site, output=output, foil=foil,
                          how=corruption, tokenizer=tokenizer, replacement=replacement,
                          seed=seed, batch_size=batch_size).to_dict()
