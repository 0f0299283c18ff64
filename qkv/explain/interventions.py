"""Interventions: change one activation inside the model for one call, and see what the output does.

A :class:`Site` names a place in the model whose activation can be read, *ablated* (set to zero or
to its mean) or *patched* (set to its value on another input, :mod:`qkv.explain.patching`):

==============  ===========================  ==========================================  ========
kind            ``module`` is                the activation                              width F
==============  ===========================  ==========================================  ========
``"head"``      an attention module          head ``h``'s slice ``[h·D, (h+1)·D)`` of     D
                                             the merged heads, the input of W^O
``"attention"`` an attention module          the module's output (after W^O)              E
``"mlp"``       a feed-forward module        the feed-forward network's output            E
``"neuron"``    a feed-forward module        chosen units of the hidden activation,       k
                                             the input of W_2
``"residual"``  a layer (``layers.1``)       the residual stream leaving the layer        E
==============  ===========================  ==========================================  ========

Every activation is ``(B, T, ·)``; a site covers every position or one (``position``). Module
names are those of ``model.named_modules()``: ``"layers.0.self_attention"``,
``"encoder.layers.1.feed_forward"``, ``"decoder.layers.0.cross_attention"``…

Hooks are added for one block and removed after it, even when it raises; parameters are never
touched (TransformerLens' discipline). A head is cut at the input of W^O, where the heads are
still apart — ``MultiHead(Q, K, V) = Concat(head_1, …, head_h) W^O`` — so zeroing head ``h``'s
slice removes exactly its term ``head_h W^O_h`` from the output, on the fused and the math path
alike (both call ``output_proj`` on the merged heads).

:func:`ablate` is the context manager; :func:`head_ablation` ablates each head alone and measures
the subject's target (Michel, Levy & Neubig, 2019, "Are Sixteen Heads Really Better than One?");
the ``"ablate"`` analysis reports either.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from qkv._checks import shape_str
from qkv.attention.multi_head import MultiHeadAttention
from qkv.explain._outputs import prediction
from qkv.explain.analysis import register_analysis
from qkv.explain.subject import SCORES, Subject, eval_mode
from qkv.models.feed_forward import FeedForward
from qkv.models.layers import DecoderLayer, EncoderLayer

__all__ = ["Site", "SITE_KINDS", "ablate", "mean_activations", "HeadAblation", "head_ablation",
           "parse_heads", "sites_of"]

SITE_KINDS = ("head", "attention", "mlp", "neuron", "residual")
ABLATION_MODES = ("zero", "mean")
_MODULE_TYPES = {"head": MultiHeadAttention, "attention": MultiHeadAttention,
                 "mlp": FeedForward, "neuron": FeedForward, "residual": (EncoderLayer, DecoderLayer)}
_MODULE_WORDS = {"head": "an attention module", "attention": "an attention module",
                 "mlp": "a feed-forward module", "neuron": "a feed-forward module",
                 "residual": "a layer"}


@dataclass(frozen=True)
class Site:
    """A place whose activation an intervention reads or replaces.

    Args:
        kind: one of :data:`SITE_KINDS` (see the module's table).
        module: the dotted module name (an attention module for ``"head"``/``"attention"``, a
            feed-forward module for ``"mlp"``/``"neuron"``, a layer for ``"residual"``).
        head: which head, for ``"head"``.
        neurons: which hidden units (indices into ``d_ff``), for ``"neuron"``.
        position: one position of the module's sequence (negative counts from the end), or
            ``None`` for all of them.

    Example:
        >>> Site("head", "layers.0.self_attention", head=1)
        Site(kind='head', module='layers.0.self_attention', head=1, neurons=None, position=None)
    """

    kind: str
    module: str
    head: int | None = None
    neurons: tuple[int, ...] | None = None
    position: int | None = None

    def __str__(self) -> str:
        what = {"head": f"head {self.head}", "neuron": f"neurons {list(self.neurons or ())}"}
        where = "" if self.position is None else f" @ position {self.position}"
        return f"{self.module} ({what.get(self.kind, self.kind)}){where}"


@dataclass(frozen=True)
class _Point:
    """Where a site's activation is: a module and whether it is the module's input (``pre``:
    the first argument, e.g. the merged heads entering W^O) or its output."""

    module: str
    pre: bool


@dataclass(frozen=True)
class _Edit:
    """Replace ``site``'s activation in batch row ``row`` (``None``: every row) by ``value``:
    ``"zero"``, ``"mean"`` (over the positions of the current input) or a tensor — the site's
    full-width activation ``(B', T, F_point)`` from another run (patching, ``B'`` 1 or B) or
    precomputed means ``(F_point,)``."""

    site: Site
    value: str | Tensor
    row: int | None = None


# -- sites: checked against the model ---------------------------------------------------------


def _check_site(model: nn.Module, site: Site) -> Site:
    if not isinstance(site, Site):
        raise TypeError(f"a site must be a qkv.explain.Site, got {type(site).__name__}")
    if site.kind not in SITE_KINDS:
        raise ValueError(f"site kind must be one of {SITE_KINDS}, got {site.kind!r}")
    module = dict(model.named_modules()).get(site.module)
    wanted = _MODULE_TYPES[site.kind]
    if not isinstance(module, wanted):
        known = [name for name, m in model.named_modules() if isinstance(m, wanted)]
        found = "no such module" if module is None else f"a {type(module).__name__}"
        raise ValueError(f"a {site.kind!r} site needs {_MODULE_WORDS[site.kind]} of the model, "
                         f"but {site.module!r} is {found}; the model has {_few(known)}")
    if site.kind == "head":
        H = module.num_heads
        if isinstance(site.head, bool) or not isinstance(site.head, int) or not 0 <= site.head < H:
            raise ValueError(f"head must be an int in [0, {H}) for {site.module!r} ({H} heads), "
                             f"got {site.head!r}")
    if site.kind == "neuron":
        d_ff = module.inner.out_features
        neurons = site.neurons
        if (neurons is None or not len(neurons) or any(
                isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < d_ff
                for n in neurons)):
            raise ValueError(f"neurons must be a non-empty list of ints in [0, {d_ff}) for "
                             f"{site.module!r} (d_ff = {d_ff}), got {neurons!r}")
    if site.position is not None and (isinstance(site.position, bool)
                                      or not isinstance(site.position, int)):
        raise ValueError(f"position must be an int or None, got {site.position!r}")
    return site


def _few(names: Sequence[str]) -> str:
    if not names:
        return "none"
    shown = ", ".join(map(repr, names[:6]))
    return shown + (f" … ({len(names)} in all)" if len(names) > 6 else "")


def _point(site: Site) -> _Point:
    if site.kind == "head":
        return _Point(site.module + ".output_proj", pre=True)           # merged heads, before W^O
    if site.kind == "neuron":
        return _Point(site.module + ".outer", pre=True)                 # hidden, before W_2
    return _Point(site.module, pre=False)


def _features(model: nn.Module, site: Site) -> slice | Tensor:
    """Which entries of the point's last dim the site covers."""
    if site.kind == "head":
        D = model.get_submodule(site.module).head_dim
        return slice(site.head * D, (site.head + 1) * D)
    if site.kind == "neuron":
        return torch.tensor(list(site.neurons), dtype=torch.long)
    return slice(None)


def sites_of(model: nn.Module, kind: str) -> list[str]:
    """The names of the modules a ``kind`` site can sit on, in the model's order
    (for a translation: the encoder's, then the decoder's).

    Example:
        >>> import qkv
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=10, d_model=8,
        ...     num_heads=2, num_layers=2, d_ff=16))
        >>> sites_of(model, "residual"), sites_of(model, "mlp")[1]
        (['layers.0', 'layers.1'], 'layers.1.feed_forward')
    """
    if kind not in SITE_KINDS:
        raise ValueError(f"kind must be one of {SITE_KINDS}, got {kind!r}")
    return [name for name, module in model.named_modules()
            if isinstance(module, _MODULE_TYPES[kind])]


def parse_heads(model: nn.Module, heads) -> list[Site]:
    """Heads given as ``{attention module name: [head, …]}``, as ``[(name, head), …]`` or as
    strings ``"name:head"`` → one ``"head"`` site each, checked against the model."""
    if heads is None:
        return []
    if isinstance(heads, Mapping):
        pairs = [(name, head) for name, chosen in heads.items()
                 for head in ([chosen] if isinstance(chosen, int) else chosen)]
    elif isinstance(heads, (list, tuple)):
        pairs = []
        for item in heads:
            if isinstance(item, str) and ":" in item:
                name, _, head = item.rpartition(":")
                try:
                    pairs.append((name, int(head)))
                except ValueError:
                    raise ValueError(f"a head given as a string is 'module:head', e.g. "
                                     f"'layers.0.self_attention:1', got {item!r}") from None
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                pairs.append(tuple(item))
            else:
                raise ValueError(f"heads must be {{name: [head, …]}}, [(name, head), …] or "
                                 f"['name:head', …]; got the item {item!r}")
    else:
        raise TypeError(f"heads must be a dict or a list, got {type(heads).__name__}")
    return [_check_site(model, Site("head", str(name), head=head)) for name, head in pairs]


def _parse_neurons(model: nn.Module, neurons) -> list[Site]:
    if neurons is None:
        return []
    if not isinstance(neurons, Mapping):
        raise TypeError(f"neurons must be {{feed_forward module name: [index, …]}}, got "
                        f"{type(neurons).__name__}")
    return [_check_site(model, Site("neuron", str(name), neurons=tuple(
        [chosen] if isinstance(chosen, int) else list(chosen)))) for name, chosen in
        neurons.items()]


# -- hooks -------------------------------------------------------------------------------------


def _position(site: Site, T: int) -> slice:
    if site.position is None:
        return slice(None)
    if not -T <= site.position < T:
        raise ValueError(f"{site}: position {site.position} is outside the {T} positions of "
                         f"this call")
    p = site.position % T
    return slice(p, p + 1)


def _apply(x: Tensor, edits: Sequence[tuple[_Edit, slice | Tensor]]) -> Tensor:
    """``x (B, T, F)`` with every edit made, on a copy; values are computed from ``x`` as it
    came (so a mean is the mean of the original activation)."""
    out = x.clone()
    B, T = x.shape[0], x.shape[1]
    for edit, features in edits:
        if isinstance(features, Tensor):
            features = features.to(x.device)
        rows = slice(None) if edit.row is None else slice(edit.row, edit.row + 1)
        positions = _position(edit.site, T)
        view = out[rows, positions]                                     # (b, t, F), a view
        value = edit.value
        if isinstance(value, str) and value == "zero":
            view[..., features] = 0.0
        elif isinstance(value, str):                                    # "mean" over positions
            view[..., features] = x[rows][..., features].mean(dim=1, keepdim=True)  # (b, 1, f)
        elif value.dim() == 1:                                          # precomputed (F,)
            view[..., features] = value.to(x.device, x.dtype)[features]
        else:                                                           # another run (B', T, F)
            if value.shape[1:] != x.shape[1:] or value.shape[0] not in (1, B):
                raise ValueError(
                    f"{edit.site}: the recorded activation has shape {shape_str(value.shape)} "
                    f"but this call's is {shape_str(x.shape)}; patching needs the same number "
                    f"of positions (and width) in both runs")
            source = value.to(x.device, x.dtype)
            source = source if source.shape[0] == 1 or edit.row is None else source[rows]
            view[..., features] = source[:, positions][..., features]
    return out


@contextlib.contextmanager
def _hooked(model: nn.Module, edits: Iterable[_Edit]) -> Iterator[None]:
    """While inside, every edit is made on every call of its module; hooks removed after."""
    by_point: dict[_Point, list[tuple[_Edit, slice | Tensor]]] = {}
    for edit in edits:
        _check_site(model, edit.site)
        by_point.setdefault(_point(edit.site), []).append((edit, _features(model, edit.site)))
    handles = []
    try:
        for point, point_edits in by_point.items():
            module = model.get_submodule(point.module)
            if point.pre:
                def pre_hook(_module, args, point_edits=point_edits):
                    return (_apply(args[0], point_edits), *args[1:])
                handles.append(module.register_forward_pre_hook(pre_hook))
            else:
                def hook(_module, _args, output, point_edits=point_edits):
                    if isinstance(output, tuple):                       # attention: (out, weights)
                        return (_apply(output[0], point_edits), *output[1:])
                    return _apply(output, point_edits)
                handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def _recording(model: nn.Module, sites: Iterable[Site]) -> Iterator[dict[_Point, Tensor]]:
    """While inside, each site's point's full activation of the last call is kept, detached,
    in the yielded ``{point: (B, T, F)}``."""
    record: dict[_Point, Tensor] = {}
    handles = []
    try:
        for point in {_point(_check_site(model, site)) for site in sites}:
            module = model.get_submodule(point.module)
            if point.pre:
                def pre_hook(_module, args, point=point):
                    record[point] = args[0].detach().clone()
                handles.append(module.register_forward_pre_hook(pre_hook))
            else:
                def hook(_module, _args, output, point=point):
                    value = output[0] if isinstance(output, tuple) else output
                    record[point] = value.detach().clone()
                handles.append(module.register_forward_hook(hook))
        yield record
    finally:
        for handle in handles:
            handle.remove()


# -- ablation ----------------------------------------------------------------------------------


@contextlib.contextmanager
def ablate(model: nn.Module, *, heads=None, neurons=None, mode: str = "zero",
           means: Mapping[str, Tensor] | None = None) -> Iterator[list[Site]]:
    """Inside the block, the chosen heads and feed-forward neurons are knocked out.

    Ablation (Michel, Levy & Neubig, 2019, "Are Sixteen Heads Really Better than One?"): run the
    model with a component's output replaced by a constant and compare. A head is cut at the
    input of W^O (its slice ``[h·D, (h+1)·D)`` of the merged heads ``(B, T, E)``); a neuron at
    the input of W_2 (its unit of the hidden activation ``(B, T, d_ff)``, after the activation
    function).

    Args:
        model: any qkv model (or module holding qkv attention / feed-forward modules).
        heads: ``{attention module name: [head, …]}``, ``[(name, head), …]`` or
            ``["name:head", …]``, e.g. ``{"encoder.layers.0.self_attention": [1, 3]}``.
        neurons: ``{feed-forward module name: [index, …]}``, e.g. ``{"layers.0.feed_forward":
            [7]}``.
        mode: ``"zero"``, or ``"mean"``: the activation's mean over the positions of the
            current input, per sequence of the batch (padding positions included; a call of one
            position — a cached decoding step — is left unchanged by it). Give ``means`` for a
            mean over a dataset instead (:func:`mean_activations`).
        means: ``{module name: (F,)}``: for an attention module, the mean merged heads ``(E,)``;
            for a feed-forward module, the mean hidden activation ``(d_ff,)``. Used for the
            modules it names when ``mode="mean"``.

    Yields:
        the ablated sites.

    Raises:
        ValueError: an unknown module name (the message lists the model's), a head or neuron
            out of range, an unknown mode, a means entry of the wrong width.

    Example:
        >>> import torch, qkv
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=10, d_model=8,
        ...     num_heads=2, num_layers=1, d_ff=16)).eval()
        >>> ids = torch.tensor([[1, 2, 3]])
        >>> before = model(ids)
        >>> with ablate(model, heads={"layers.0.self_attention": [0, 1]}):
        ...     changed = not torch.allclose(model(ids), before)
        >>> changed, torch.equal(model(ids), before)
        (True, True)
    """
    if mode not in ABLATION_MODES:
        raise ValueError(f"mode must be one of {ABLATION_MODES}, got {mode!r}")
    sites = parse_heads(model, heads) + _parse_neurons(model, neurons)
    if not sites:
        raise ValueError("give heads= and/or neurons= to ablate")
    edits = [_Edit(site, _ablation_value(model, site, mode, means)) for site in sites]
    with _hooked(model, edits):
        yield sites


def _ablation_value(model: nn.Module, site: Site, mode: str,
                    means: Mapping[str, Tensor] | None) -> str | Tensor:
    if mode == "zero":
        return "zero"
    if means is None or site.module not in means:
        return "mean"
    value = means[site.module]
    width = _point_width(model, site)
    if not isinstance(value, Tensor) or value.shape != (width,):
        raise ValueError(f"means[{site.module!r}] must be a tensor ({width},) — the mean "
                         f"{'merged heads' if site.kind == 'head' else 'hidden activation'} — "
                         f"got {shape_str(value.shape) if isinstance(value, Tensor) else value!r}")
    return value.detach()


def _point_width(model: nn.Module, site: Site) -> int:
    module = model.get_submodule(site.module)
    if site.kind == "neuron":
        return module.inner.out_features
    return module.d_model if site.kind == "head" else module.output_proj.out_features


@torch.no_grad()
def mean_activations(model: nn.Module, inputs: Iterable[Any], *, heads: Sequence[str] = (),
                     neurons: Sequence[str] = ()) -> dict[str, Tensor]:
    """Mean activations over a dataset, for ``ablate(..., mode="mean", means=...)``.

    Args:
        model: the model.
        inputs: what to run: each item the model's positional input(s) — an ids tensor
            ``(B, T)``, or a tuple ``(source, target)`` for a translation.
        heads: attention module names: their mean merged heads ``(E,)`` (all positions).
        neurons: feed-forward module names: their mean hidden activation ``(d_ff,)``.

    Returns:
        ``{module name: (F,)}``.
    """
    sites = ([Site("head", name, head=0) for name in heads]              # point: W^O input
             + [Site("neuron", name, neurons=(0,)) for name in neurons])
    sums: dict[str, Tensor] = {}
    counts: dict[str, int] = {}
    with eval_mode(model):
        for item in inputs:
            with _recording(model, sites) as record:
                model(*item) if isinstance(item, tuple) else model(item)
            for site in sites:
                value = record[_point(site)].double().flatten(0, -2)    # (B·T, F)
                sums[site.module] = sums.get(site.module, 0) + value.sum(0)
                counts[site.module] = counts.get(site.module, 0) + value.shape[0]
    if not counts:
        raise ValueError("mean_activations needs at least one input and one module")
    return {name: (sums[name] / counts[name]).float() for name in sums}


# -- every head ablated alone ------------------------------------------------------------------


@dataclass(frozen=True)
class HeadAblation:
    """The subject's target score with each head ablated alone.

    Attributes:
        rows: the attention modules, in the model's order (``R`` of them).
        num_heads: ``H``.
        baseline: the score without ablation.
        scores: ``(R, H)``, the score with head ``h`` of ``rows[r]`` ablated.
        output: which score (:data:`~qkv.explain.subject.SCORES`).
        mode: ``"zero"`` or ``"mean"``.
    """

    rows: list[str]
    num_heads: int
    baseline: float
    scores: Tensor
    output: str
    mode: str

    @property
    def change(self) -> Tensor:
        """``(R, H)``: ablated − baseline (negative: the head supported the target)."""
        return self.scores - self.baseline


def head_ablation(subject: Subject, *, mode: str = "zero", output: str = "log_probability",
                  batch_size: int = 32) -> HeadAblation:
    """Ablate every head of every attention module alone and score the subject's target.

    Michel, Levy & Neubig, 2019, "Are Sixteen Heads Really Better than One?": how much does the
    output depend on each single head? The ``R·H`` ablations run in batches of ``batch_size``
    copies of the input, each copy with its own head ablated.

    Args:
        subject: the model, input and target.
        mode: ``"zero"`` or ``"mean"`` (over the input's positions), as :func:`ablate`.
        output: the score: ``"log_probability"`` (default; does not saturate near 1),
            ``"probability"`` or ``"logit"``; a similarity target's score is the cosine.

    Shape:
        ``scores (R, H)``, ``R`` attention modules of ``H`` heads
    """
    if mode not in ABLATION_MODES:
        raise ValueError(f"mode must be one of {ABLATION_MODES}, got {mode!r}")
    _check_output(output)
    model = subject.model
    rows = sites_of(model, "head")
    H = max(model.get_submodule(name).num_heads for name in rows)
    variants = [[_Edit(Site("head", name, head=h), mode)] if h < model.get_submodule(
        name).num_heads else None for name in rows for h in range(H)]
    scores = score_edited(subject, variants, output=output, batch_size=batch_size)
    baseline = float(subject.score(output=output)[0])
    return HeadAblation(rows, H, baseline, scores.view(len(rows), H), output, mode)


def _check_output(output: str) -> None:
    if output not in SCORES:
        raise ValueError(f"output must be one of {SCORES}, got {output!r}")


@torch.no_grad()
def score_edited(subject: Subject, variants: Sequence[Sequence[_Edit] | None], *,
                 output: str = "log_probability", ids: Mapping[str, Tensor] | None = None,
                 embeddings: Mapping[str, Tensor] | None = None, foil: int | None = None,
                 batch_size: int = 32) -> Tensor:
    """The target's score for each variant: the input (``ids`` by side, default the subject's;
    ``embeddings`` ``{side: (1, T_side, E)}`` replacing its token embeddings) with the variant's
    edits made (``None``: a variant that does not exist, scored NaN). ``foil``: the score is
    ``logit(target) − logit(foil)`` (Wang et al., 2022) instead.

    Shape:
        returns ``(K,)`` for ``K`` variants
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    ids = dict(subject.ids if ids is None else ids)
    scores = torch.full((len(variants),), math.nan)
    real = [k for k, variant in enumerate(variants) if variant is not None]
    for start in range(0, len(real), batch_size):
        chunk = real[start:start + batch_size]
        edits = [replace(edit, row=row) for row, k in enumerate(chunk) for edit in variants[k]]
        with _hooked(subject.model, edits):
            scores[chunk] = subject_scores(subject, ids, len(chunk), output=output,
                                           embeddings=embeddings, foil=foil)
    return scores


def subject_scores(subject: Subject, ids: Mapping[str, Tensor], K: int, *, output: str,
                   embeddings: Mapping[str, Tensor] | None = None,
                   foil: int | None = None) -> Tensor:
    """The target's score on ``K`` copies of one input (``ids`` ``{side: (T_side,)}``), under
    whatever hooks are on: ``(K,)``."""
    device = subject.device
    batch = {side: value.to(device).reshape(1, -1).expand(K, -1) for side, value in ids.items()}
    embeds = None if embeddings is None else {
        side: value.to(device).expand(K, -1, -1) for side, value in embeddings.items()}
    if foil is None:
        return subject.score_batch(batch, output=output, embeddings=embeds).float().cpu()
    foiled = replace(subject, target=_foil_target(subject, foil))
    logits = subject.score_batch(batch, output="logit", embeddings=embeds)      # (K,)
    return (logits - foiled.score_batch(batch, output="logit", embeddings=embeds)).float().cpu()


def _foil_target(subject: Subject, foil: int):
    """The subject's target with the foil's class or token instead (checked)."""
    target = subject.target
    if not hasattr(target, "token") and not hasattr(target, "label"):
        raise ValueError("a foil (logit difference) needs a label or token target, not a "
                         f"{type(target).__name__}")
    size = (len(subject.model.labels) if hasattr(target, "label") else
            subject.model.config.vocab_size if "text" in subject.ids
            else subject.model.config.target_vocab_size)
    if isinstance(foil, bool) or not isinstance(foil, int) or not 0 <= foil < size:
        raise ValueError(f"foil must be a class or token id in [0, {size}), got {foil!r}")
    return replace(target, **{"label" if hasattr(target, "label") else "token": foil})


# -- the registered analysis -------------------------------------------------------------------


def _ablate_analysis_html(report: dict) -> str:
    from qkv.views.patching import ablation_html
    return ablation_html(report)


def _ablate_analysis_png(report: dict, path) -> None:
    from qkv.views.patching import save_ablation_figure
    save_ablation_figure(report, path)


@register_analysis("ablate", html=_ablate_analysis_html, png=_ablate_analysis_png)
def run_ablate(subject: Subject, *, heads=None, neurons=None, mode: str = "zero",
               output: str = "log_probability", tokenizer=None, batch_size: int = 32) -> dict:
    """The ``"ablate"`` analysis.

    Without ``heads``/``neurons``: every head ablated alone (:func:`head_ablation`), the
    change of the target's score as an ``(R, H)`` table. With them: that set ablated together,
    the score and the model's prediction (top 5) before and after.

    Report keys: ``kind``, ``target``, ``output``, ``mode``, and either ``rows``,
    ``num_heads``, ``baseline``, ``scores`` and ``change`` (``R × H``, ``None`` for a missing
    head) or ``ablated`` (the sites), ``before`` and ``after`` (``{"score", "top"}``).
    """
    _check_output(output)
    report = {"kind": "ablate", "target": subject.target_name, "output": output, "mode": mode}
    if heads is None and neurons is None:
        table = head_ablation(subject, mode=mode, output=output, batch_size=batch_size)
        return {**report, "rows": table.rows, "num_heads": table.num_heads,
                "baseline": table.baseline, "scores": to_json(table.scores),
                "change": to_json(table.change)}
    before = {"score": float(subject.score(output=output)[0]),
              "top": prediction(subject, tokenizer=tokenizer)}
    with ablate(subject.model, heads=heads, neurons=neurons, mode=mode) as sites:
        after = {"score": float(subject.score(output=output)[0]),
                 "top": prediction(subject, tokenizer=tokenizer)}
    return {**report, "ablated": [str(site) for site in sites], "before": before, "after": after}


def to_json(values: Tensor) -> Any:
    """A tensor as nested lists of floats, NaN as ``None`` (JSON has no NaN)."""
    data = values.detach().cpu().double().tolist()

    def clean(item):
        if isinstance(item, list):
            return [clean(x) for x in item]
        return None if math.isnan(item) or math.isinf(item) else item
    return clean(data)
