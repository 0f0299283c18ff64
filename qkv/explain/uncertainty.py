"""How sure is the model? Predictive entropy, Monte Carlo dropout, and calibration.

* :func:`predictive_entropy` — the entropy (in nats) of the model's distribution: over the labels
  for a classifier, over the next token at every position for a language model or a translation
  (teacher-forced).
* :func:`mc_dropout` — Gal & Ghahramani, 2016, "Dropout as a Bayesian Approximation: Representing
  Model Uncertainty in Deep Learning": ``n`` forward passes with dropout on; the spread of the
  probabilities is the model's (epistemic) uncertainty, the mutual information between the
  prediction and the dropout mask (Houlsby et al., 2011, "Bayesian Active Learning for
  Classification and Preference Learning": BALD) its share of the entropy.
* :func:`calibration` — Guo, Pleiss, Sun & Weinberger, 2017, "On Calibration of Modern Neural
  Networks": do the predictions made with confidence 0.8 come true 80% of the time? The expected
  calibration error (ECE) over equal-width confidence bins, and the reliability diagram
  (:func:`save_reliability_diagram`).

An encoder's :class:`~qkv.explain.targets.Similarity` has no distribution: entropy does not
apply (a ValueError says so), MC dropout gives the spread of the cosine.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from qkv._checks import shape_str
from qkv.attention.multi_head import MultiHeadAttention
from qkv.explain._outputs import output_logits, prediction
from qkv.explain.analysis import register_analysis
from qkv.explain.interventions import to_json
from qkv.explain.subject import Subject, eval_mode, subject as make_subject
from qkv.explain.targets import Label, OutputToken, Similarity
from qkv.models import SequenceClassifier, Transformer

__all__ = ["predictive_entropy", "mc_dropout", "MCDropout", "dropout_mode", "Calibration",
           "calibration", "classifier_probabilities", "save_reliability_diagram"]


def _as_subject(subject_or_model, inputs, target=None, tokenizer=None) -> Subject:
    if isinstance(subject_or_model, Subject):
        if inputs is not None:
            raise ValueError("a subject carries its input: give inputs only with a model")
        return subject_or_model
    if inputs is None:
        raise ValueError("with a model, give its inputs (ids, or {'source', 'target'})")
    if target is None and isinstance(subject_or_model, Transformer) and isinstance(
            inputs, Mapping) and "target" in inputs:            # every given output token
        target = OutputToken(index=len(inputs["target"]) - 1)
    return make_subject(subject_or_model, inputs, target, tokenizer=tokenizer)


def _entropy(logits: Tensor) -> Tensor:
    """``−Σ p log p`` over the last dim, in nats: ``(..., C)`` → ``(...)``."""
    return torch.special.entr(torch.softmax(logits.double(), dim=-1)).sum(-1)   # 0·log 0 = 0


@torch.no_grad()
def predictive_entropy(subject_or_model, inputs=None) -> Tensor:
    """The entropy of the model's predictive distribution, in nats (0 = certain; at most
    ``log C`` or ``log V``).

    Args:
        subject_or_model: a :class:`~qkv.explain.Subject`, or a model with ``inputs`` (one
            input: ids ``(T,)``, or ``{"source", "target"}`` for a translation).

    Shape:
        a classifier's: ``()`` (of the label distribution); a language model's: ``(T,)``, entry
        ``t`` the distribution of the token after position ``t``; a translation's: ``(T,)`` over
        the target prefix (teacher-forced), likewise.

    Raises:
        ValueError: a similarity subject (an encoder has no distribution).

    Example:
        >>> import torch, qkv
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=10, d_model=8,
        ...     num_heads=2, num_layers=1, d_ff=16))
        >>> entropy = predictive_entropy(model, [1, 2, 3])
        >>> entropy.shape, bool((entropy <= torch.log(torch.tensor(10.0)) + 1e-6).all())
        (torch.Size([3]), True)
    """
    subject = _as_subject(subject_or_model, inputs)
    if isinstance(subject.target, Similarity):
        raise ValueError("predictive entropy needs a distribution over labels or tokens; an "
                         "encoder's similarity has none (use mc_dropout for its spread)")
    with eval_mode(subject.model):
        ids = {side: value[None].to(subject.device) for side, value in subject.ids.items()}
        return _entropy(output_logits(subject, ids)[0]).float().cpu()   # () | (T,)


@contextlib.contextmanager
def dropout_mode(model: nn.Module) -> Iterator[int]:
    """Inside the block only dropout is in training mode — every ``nn.Dropout`` and the attention
    dropout of :class:`~qkv.MultiHeadAttention` — everything else in eval mode; every module's
    own mode restored after. Yields the number of dropout places with ``p > 0``."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    active = 0
    try:
        for module in model.modules():
            if isinstance(module, nn.modules.dropout._DropoutNd):
                module.training = True
                active += module.p > 0
            elif isinstance(module, MultiHeadAttention) and module.dropout > 0:
                module.training = True                                  # its attention dropout only
                active += 1
        yield active
    finally:
        for module, training in modes.items():
            module.training = training


@dataclass(frozen=True)
class MCDropout:
    """``n`` stochastic passes of one input with dropout on (Gal & Ghahramani, 2016).

    Attributes:
        samples: ``n``.
        target: ``(n,)``, the target's probability in each pass (a similarity's cosine).
        mean, std: the probabilities' mean and standard deviation over the passes: ``(C,)`` for
            a classifier, ``(T, V)`` for a language model / translation (row ``t``: the token
            after position ``t``); ``None`` for a similarity.
        entropy: the entropy of ``mean`` (the MC predictive entropy), ``()`` or ``(T,)``.
        mutual_information: ``entropy`` minus the passes' mean entropy (BALD, Houlsby et al.,
            2011): the part of the uncertainty that comes from the weights, ``()`` or ``(T,)``.
        token_mean, token_std: ``(T,)``, the probability of the *given* next token at each
            position (the input's next token, the target token after the last): language model
            and translation only.
        dropout_modules: how many dropout places have ``p > 0`` (0: every pass is the same).
    """

    samples: int
    target: Tensor
    mean: Tensor | None = None
    std: Tensor | None = None
    entropy: Tensor | None = None
    mutual_information: Tensor | None = None
    token_mean: Tensor | None = None
    token_std: Tensor | None = None
    dropout_modules: int = 0

    @property
    def target_mean(self) -> float:
        return float(self.target.mean())

    @property
    def target_std(self) -> float:
        return float(self.target.std()) if self.samples > 1 else 0.0


def _std(total: Tensor, squares: Tensor, n: int) -> Tensor:
    mean = total / n
    return ((squares - n * mean * mean) / max(n - 1, 1)).clamp(min=0).sqrt()


@torch.no_grad()
def mc_dropout(subject_or_model, inputs=None, n: int = 30, *, seed: int | None = 0,
               target=None, batch_size: int = 16) -> MCDropout:
    """Monte Carlo dropout: Gal & Ghahramani, 2016, "Dropout as a Bayesian Approximation:
    Representing Model Uncertainty in Deep Learning".

    ``n`` forward passes of the same input with only the dropout modules in training mode
    (:func:`dropout_mode`; every module's mode restored after), run as batches of up to
    ``batch_size`` copies of the input (each copy draws its own masks).

    Args:
        subject_or_model: a :class:`~qkv.explain.Subject`, or a model with one ``inputs``
            (then ``target`` as :func:`qkv.explain.subject`, default the model's prediction).
        n: passes, at least 2.
        seed: seeds the dropout masks (the global random state is left as it was); ``None``:
            not seeded.

    Returns:
        :class:`MCDropout`: for a classifier the label probabilities; for a language model or a
        translation the next-token distribution at every position and the given tokens'
        probabilities; for a similarity the cosine's spread.

    Example:
        >>> import torch, qkv
        >>> model = qkv.SequenceClassifier(qkv.SequenceClassifierConfig(vocab_size=10,
        ...     d_model=8, num_heads=2, num_layers=1, d_ff=16, labels=["a", "b"], dropout=0.3))
        >>> result = mc_dropout(model, [1, 2, 3], n=8)
        >>> result.mean.shape, result.target_std > 0, model.training
        (torch.Size([2]), True, True)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n (passes) must be an int >= 2, got {n!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    subject = _as_subject(subject_or_model, inputs, target)
    device = subject.device
    fork = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork), dropout_mode(subject.model) as active:
        if seed is not None:
            torch.manual_seed(seed)
        if isinstance(subject.target, Similarity):
            target = torch.cat([_similarity(subject, k) for k in _chunks(n, batch_size)])
            return MCDropout(n, target, dropout_modules=active)
        sums = squares = entropies = None
        targets, tokens = [], []
        next_ids = _next_ids(subject)                                   # (T,) | None
        for K in _chunks(n, batch_size):
            ids = {side: value.to(device)[None].expand(K, -1) for side, value in
                   subject.ids.items()}
            logits = output_logits(subject, ids).double()               # (K, C) | (K, T, V)
            probabilities = torch.softmax(logits, dim=-1)
            entropy = _entropy(logits)                                  # (K,) | (K, T)
            sums = probabilities.sum(0) + (0 if sums is None else sums)
            squares = (probabilities ** 2).sum(0) + (0 if squares is None else squares)
            entropies = entropy.sum(0) + (0 if entropies is None else entropies)
            if next_ids is None:                                        # classifier
                targets.append(probabilities[:, subject.target.label])
            else:
                given = probabilities.gather(-1, next_ids.to(device)[None, :, None].expand(
                    K, -1, 1))[..., 0]                                  # (K, T)
                tokens.append(given)
                targets.append(given[:, -1])
    mean = sums / n
    entropy_of_mean = torch.special.entr(mean).sum(-1)                  # () | (T,)
    result = dict(samples=n, target=torch.cat(targets).float().cpu(),
                  mean=mean.float().cpu(), std=_std(sums, squares, n).float().cpu(),
                  entropy=entropy_of_mean.float().cpu(),
                  mutual_information=(entropy_of_mean - entropies / n).clamp(min=0).float().cpu(),
                  dropout_modules=active)
    if tokens:
        given = torch.cat(tokens)                                       # (n, T)
        result.update(token_mean=given.mean(0).float().cpu(),
                      token_std=given.std(0).float().cpu())
    return MCDropout(**result)


def _chunks(n: int, size: int) -> list[int]:
    return [min(size, n - start) for start in range(0, n, size)]


def _next_ids(subject: Subject) -> Tensor | None:
    """The token after each position of the scored side: the input's own next token, the
    target's token after the last. ``None`` for a classifier."""
    if isinstance(subject.target, Label):
        return None
    side = "text" if "text" in subject.ids else "target"
    ids = subject.ids[side]
    return torch.cat([ids[1:], torch.tensor([subject.target.token])])   # (T,)


def _similarity(subject: Subject, K: int) -> Tensor:
    ids = {side: value.to(subject.device)[None].expand(K, -1) for side, value in
           subject.ids.items()}
    return subject._target_score(ids, "probability").float().cpu()     # (K,) cosines


# -- calibration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """Expected calibration error and the reliability diagram's bins (Guo et al., 2017).

    Attributes:
        ece: ``Σ_m |B_m|/N · |accuracy(B_m) − confidence(B_m)|`` over the bins.
        bin_confidence: ``(M,)``, the mean top-label confidence in each bin (NaN if empty).
        bin_accuracy: ``(M,)``, the fraction correct in each bin (NaN if empty).
        bin_count: ``(M,)``, predictions per bin; bin ``m`` holds confidences in
            ``(m/M, (m+1)/M]`` (the first also 0).
    """

    ece: float
    bin_confidence: Tensor
    bin_accuracy: Tensor
    bin_count: Tensor

    @property
    def bins(self) -> int:
        return int(self.bin_count.shape[0])

    @property
    def accuracy(self) -> float:
        count = self.bin_count.double()
        return float((self.bin_accuracy.nan_to_num(0).double() * count).sum() / count.sum())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (empty bins' confidence and accuracy as ``None``)."""
        return {"ece": self.ece, "bins": self.bins, "accuracy": self.accuracy,
                "bin_confidence": to_json(self.bin_confidence),
                "bin_accuracy": to_json(self.bin_accuracy),
                "bin_count": self.bin_count.tolist()}


def calibration(probabilities: Tensor, labels: Tensor, bins: int = 15) -> Calibration:
    """Expected calibration error with equal-width bins of the top-label confidence.

    Guo, Pleiss, Sun & Weinberger, 2017, "On Calibration of Modern Neural Networks" (ECE, with
    ``M = 15`` bins there). The prediction is the most probable class, its confidence that
    probability; bin ``m`` of ``M`` holds confidences in ``(m/M, (m+1)/M]``.

    Args:
        probabilities: ``(N, C)`` class probabilities (rows sum to 1), or ``(N,)`` the
            probability of class 1 of a binary problem.
        labels: ``(N,)`` the true classes.
        bins: ``M``.

    Raises:
        ValueError: shapes that do not match, probabilities outside [0, 1] or rows not summing
            to 1, labels outside ``[0, C)``, no examples, ``bins < 1``.

    Example:
        >>> import torch
        >>> result = calibration(torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]]),
        ...                      torch.tensor([0, 1, 1, 1]), bins=10)
        >>> round(result.ece, 6)                      # |0.5 − 0.9|·½ + |1 − 0.6|·½
        0.4
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be an int >= 1, got {bins!r}")
    probabilities = torch.as_tensor(probabilities).double().cpu()
    labels = torch.as_tensor(labels).cpu()
    if probabilities.dim() == 1:
        probabilities = torch.stack([1 - probabilities, probabilities], dim=1)   # (N, 2)
    if probabilities.dim() != 2 or probabilities.shape[0] == 0:
        raise ValueError(f"probabilities must be (N, C) or (N,) with N >= 1, got "
                         f"{shape_str(probabilities.shape)}")
    N, C = probabilities.shape
    if labels.shape != (N,) or labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be (N,) = ({N},) integer classes, got "
                         f"{shape_str(labels.shape)} {labels.dtype}")
    if bool(((labels < 0) | (labels >= C)).any()):
        raise ValueError(f"labels must be classes in [0, {C}), got values from "
                         f"{int(labels.min())} to {int(labels.max())}")
    if not bool(torch.isfinite(probabilities).all()) or bool(
            ((probabilities < 0) | (probabilities > 1)).any()):
        raise ValueError("probabilities must be finite and in [0, 1] (softmax the logits)")
    if not torch.allclose(probabilities.sum(1), torch.ones(N, dtype=torch.double), atol=1e-3):
        raise ValueError("each row of probabilities must sum to 1 (softmax the logits)")
    confidence, predicted = probabilities.max(dim=1)                    # (N,), (N,)
    correct = (predicted == labels).double()                            # (N,)
    index = ((confidence * bins).ceil().long() - 1).clamp(0, bins - 1)  # (N,) bin of each
    count = torch.bincount(index, minlength=bins)                       # (M,)
    sum_confidence = torch.zeros(bins, dtype=torch.double).index_add_(0, index, confidence)
    sum_correct = torch.zeros(bins, dtype=torch.double).index_add_(0, index, correct)
    safe = count.clamp(min=1).double()
    empty = count == 0
    bin_confidence = (sum_confidence / safe).masked_fill(empty, math.nan)
    bin_accuracy = (sum_correct / safe).masked_fill(empty, math.nan)
    ece = float(((sum_correct - sum_confidence).abs()).sum() / N)      # Σ |B|/N·|acc − conf|
    return Calibration(ece, bin_confidence.float(), bin_accuracy.float(), count)


@torch.no_grad()
def classifier_probabilities(model: SequenceClassifier, texts: Sequence[Sequence[int]], *,
                             samples: int = 0, seed: int | None = 0,
                             batch_size: int = 64) -> Tensor:
    """A classifier's label probabilities for many texts (ids each, of any lengths), e.g. a
    labelled test set for :func:`calibration`.

    Args:
        samples: ``0``: one pass in eval mode; ``n >= 2``: the mean of ``n`` MC-dropout passes
            (Gal & Ghahramani, 2016).

    Shape:
        ``(N, C)``
    """
    if not isinstance(model, SequenceClassifier):
        raise TypeError(f"model must be a qkv SequenceClassifier, got {type(model).__name__}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0 or samples == 1:
        raise ValueError(f"samples must be 0 (no dropout) or an int >= 2, got {samples!r}")
    texts = [list(map(int, text)) for text in texts]
    if not texts or any(not text for text in texts):
        raise ValueError("texts must be a non-empty list of non-empty id sequences")
    device = next(model.parameters()).device
    pad = model.config.pad_id or 0
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))     # little padding
    results = torch.zeros(len(texts), len(model.labels))
    mode = dropout_mode(model) if samples else eval_mode(model)
    fork = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork), mode:
        if seed is not None:
            torch.manual_seed(seed)
        for start in range(0, len(texts), batch_size):
            rows = order[start:start + batch_size]
            chunk = [texts[i] for i in rows]
            T = max(map(len, chunk))
            ids = torch.full((len(chunk), T), pad, dtype=torch.long)
            mask = torch.zeros(len(chunk), T, dtype=torch.bool)
            for row, text in enumerate(chunk):
                ids[row, :len(text)] = torch.tensor(text)
                mask[row, :len(text)] = True
            ids, mask = ids.to(device), mask.to(device)
            passes = [torch.softmax(model(ids, mask).double(), -1) for _ in range(samples or 1)]
            results[rows] = torch.stack(passes).mean(0).float().cpu()   # (B, C)
    return results


def save_reliability_diagram(result: Calibration, path: str | Path, *,
                             title: str | None = None) -> Path:
    """Draw :func:`calibration`'s bins as a reliability diagram (Guo et al., 2017, figure 1):
    accuracy per confidence bin against the diagonal, the gap shaded, the counts below.
    See :func:`qkv.views.uncertainty.save_reliability_diagram`."""
    from qkv.views.uncertainty import save_reliability_diagram as draw
    return draw(result.to_dict() if isinstance(result, Calibration) else result, path,
                title=title)


# -- the registered analysis -------------------------------------------------------------------


def _uncertainty_html(report: dict) -> str:
    from qkv.views.uncertainty import uncertainty_html
    return uncertainty_html(report)


def _uncertainty_png(report: dict, path) -> None:
    from qkv.views.uncertainty import save_uncertainty_figure
    save_uncertainty_figure(report, path)


@register_analysis("uncertainty", html=_uncertainty_html, png=_uncertainty_png)
def run_uncertainty(subject: Subject, *, samples: int = 30, seed: int = 0, tokenizer=None,
                    batch_size: int = 16) -> dict:
    """The ``"uncertainty"`` analysis: the predictive entropy at each position (of the label
    distribution for a classifier; not for a similarity) and ``samples`` MC-dropout passes: the
    target's mean and spread, and per position the given next token's.

    Report keys: ``kind``, ``target``, ``task``, ``score`` (eval-mode target probability or
    cosine), ``top`` (the top predictions), ``tokens`` (the scored positions' tokens; for a
    translation the target prefix), ``next_tokens`` (the token each position predicts),
    ``entropy`` / ``max_entropy`` (nats, ``None`` for a similarity), and ``mc_dropout``:
    ``samples``, ``seed``, ``dropout_modules``, ``target_mean``, ``target_std``, ``target``
    (the passes' values), ``token_mean``, ``token_std``, ``entropy``, ``mutual_information``.
    """
    model, target = subject.model, subject.target
    similarity = isinstance(target, Similarity)
    task = ("similarity" if similarity else "classification" if isinstance(target, Label)
            else "language_model" if "text" in subject.ids else "translation")
    side = "target" if task == "translation" else "text"
    tokens = subject.tokens[side] if subject.tokens else [str(i) for i in
                                                          subject.ids[side].tolist()]
    report: dict[str, Any] = {"kind": "uncertainty", "target": subject.target_name, "task": task,
                              "score": float(subject.score(output="probability")[0]),
                              "top": prediction(subject, tokenizer=tokenizer), "tokens": tokens,
                              "next_tokens": None, "entropy": None, "max_entropy": None,
                              "note": None}
    if not similarity:
        entropy = predictive_entropy(subject)
        report["entropy"] = to_json(entropy)
        size = (len(model.labels) if task == "classification" else
                model.config.vocab_size if task == "language_model"
                else model.config.target_vocab_size)
        report["max_entropy"] = math.log(size)
        if task != "classification":
            next_ids = _next_ids(subject).tolist()                     # (T,) ids
            if tokenizer is not None:
                report["next_tokens"] = tokenizer.tokens(next_ids)
            elif subject.tokens:                                        # the target in words
                report["next_tokens"] = tokens[1:] + [subject.target_name]
            else:
                report["next_tokens"] = [str(i) for i in next_ids]
    else:
        report["note"] = ("an encoder's similarity has no distribution: no entropy; MC dropout "
                          "gives the spread of the cosine")
    mc = mc_dropout(subject, n=samples, seed=seed, batch_size=batch_size)
    report["mc_dropout"] = {
        "samples": mc.samples, "seed": seed, "dropout_modules": mc.dropout_modules,
        "target_mean": mc.target_mean, "target_std": mc.target_std,
        "target": to_json(mc.target),
        "token_mean": None if mc.token_mean is None else to_json(mc.token_mean),
        "token_std": None if mc.token_std is None else to_json(mc.token_std),
        "entropy": None if mc.entropy is None else to_json(mc.entropy),
        "mutual_information": (None if mc.mutual_information is None
                               else to_json(mc.mutual_information)),
    }
    if mc.dropout_modules == 0:
        report["note"] = ((report["note"] + "; ") if report["note"] else "") + (
            "the model has no dropout (p = 0 everywhere): every pass is the same, so MC dropout "
            "shows no spread")
    return report
