"""Analyses that are not one score per token — the logit lens, feed-forward memories,
interventions, uncertainty — registered by name like the attribution methods.

An analysis is a function ``run(subject, **options) -> report``, the report a JSON-able dict
with ``"kind"`` (the analysis' name) and ``"target"`` (the subject's target in words), plus how to
draw it: ``html(report) -> str``, a self-contained HTML fragment (no ``<html>``; what
``qkv explain -o page.html``, the notebook view and the explorer show) and optionally
``png(report, path)``. ``qkv explain --method NAME`` runs whichever registry holds ``NAME``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qkv.explain.subject import Subject

__all__ = ["Analysis", "ANALYSES", "register_analysis", "analyse"]

Report = dict[str, Any]


@dataclass(frozen=True)
class Analysis:
    """A registered analysis: how to run it and how to draw its report."""

    name: str
    run: Callable[..., Report]
    html: Callable[[Report], str]
    png: Callable[[Report, Path], None] | None = None


ANALYSES: dict[str, Analysis] = {}


def register_analysis(name: str, *, html: Callable[[Report], str],
                      png: Callable[[Report, Path], None] | None = None):
    """Register the decorated ``run(subject, **options) -> report`` as ``name``."""
    def decorate(run: Callable[..., Report]) -> Callable[..., Report]:
        if name in ANALYSES:
            raise ValueError(f"an analysis is already registered as {name!r}")
        ANALYSES[name] = Analysis(name, run, html, png)
        return run
    return decorate


def analyse(subject: Subject, name: str, **options: Any) -> Report:
    """Run the analysis registered as ``name`` on ``subject``.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if name not in ANALYSES:
        raise ValueError(f"unknown analysis {name!r}; choose one of {', '.join(ANALYSES)}")
    return ANALYSES[name].run(subject, **options)
