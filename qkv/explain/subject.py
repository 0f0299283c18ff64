"""The thing an explanation is about: a model, its input (by side) and one target number.

:func:`subject` resolves a :mod:`target <qkv.explain.targets>` against a model and its input ids
into a :class:`Subject`, which every method of :mod:`qkv.explain` takes. A subject knows how to

* compute the target's score for the input, or for variants of it with tokens removed
  (:meth:`Subject.score`, what faithfulness measures);
* compute it from the *token embeddings* of each side instead of the ids
  (:meth:`Subject.score_from_embeddings`, what gradient methods differentiate);
* give the sides' token embeddings (:meth:`Subject.token_embeddings`).

Sides are named as in :func:`qkv.views.explore.model_inputs`: ``"text"`` for a classifier, an
encoder or a language model; ``"source"`` and ``"target"`` for a translation (the target side is
the prefix the explained token is predicted from, ``<bos>`` first). An explanation scores the
``N`` tokens of all sides, concatenated in :attr:`Subject.sides` order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from qkv._checks import shape_str
from qkv.explain.targets import Label, NextToken, OutputToken, Similarity, Target
from qkv.models import EncoderModel, LanguageModel, SequenceClassifier, Transformer

__all__ = ["Subject", "subject", "SCORES", "eval_mode"]

SCORES = ("probability", "log_probability", "logit")
_TARGETS = {SequenceClassifier: Label, LanguageModel: NextToken, Transformer: OutputToken,
            EncoderModel: Similarity}


@dataclass(frozen=True)
class Subject:
    """A model, its input and the target explained; build it with :func:`subject`.

    Attributes:
        model: the qkv model (a SequenceClassifier, LanguageModel, Transformer or EncoderModel).
        ids: the input ids by side, each ``(T_side,)``: ``{"text": …}`` or
            ``{"source": …, "target": …}`` (the target prefix, ``<bos>`` first).
        target: the resolved target: :class:`Label` with the class index, :class:`NextToken` /
            :class:`OutputToken` with the token id, or :class:`Similarity`.
        target_name: the target in words, e.g. ``"label 'de'"`` or ``"next token 'dog'"``.
        tokens: the token strings by side (what views show), when a tokenizer was given.
        special: ``(N,)`` bool, ``True`` at special tokens (``<bos>``, ``<eos>``, ``[CLS]``…),
            which faithfulness never removes.
        tokenizers: the tokenizer of each side, when one was given (analyses name the
            vocabulary's tokens with it: the logit lens, feed-forward memories).
    """

    model: nn.Module
    ids: Mapping[str, Tensor]
    target: Target
    target_name: str
    tokens: Mapping[str, list[str]] | None = None
    special: Tensor = field(default=None)  # type: ignore[assignment]
    tokenizers: Mapping[str, object] | None = field(default=None, repr=False, compare=False)

    @property
    def sides(self) -> tuple[str, ...]:
        """The sides in the order their tokens are concatenated."""
        return tuple(self.ids)

    @property
    def num_tokens(self) -> int:
        """``N``, the tokens of all sides together."""
        return sum(int(ids.shape[0]) for ids in self.ids.values())

    def split(self, scores: Tensor) -> dict[str, Tensor]:
        """Per-token ``scores (..., N)`` → ``{side: (..., T_side)}``."""
        if scores.shape[-1] != self.num_tokens:
            raise ValueError(f"scores must have N = {self.num_tokens} entries on their last dim "
                             f"(the subject's tokens), got {shape_str(scores.shape)}")
        sizes = [int(ids.shape[0]) for ids in self.ids.values()]
        return dict(zip(self.sides, scores.split(sizes, dim=-1)))

    def all_tokens(self) -> list[str]:
        """The ``N`` token strings (or ids as strings without a tokenizer), sides concatenated."""
        if self.tokens is not None:
            return [token for side in self.sides for token in self.tokens[side]]
        return [str(i) for side in self.sides for i in self.ids[side].tolist()]

    # -- computing the target ------------------------------------------------------------------

    @torch.no_grad()
    def score(self, variants: Sequence[Mapping[str, Tensor]] | None = None, *,
              output: str = "probability") -> Tensor:
        """The target's score for the input, or for each variant of it.

        Args:
            variants: inputs by side, each side's ids ``(T_side',)`` (tokens may be removed, so
                lengths may differ from the subject's); ``None`` = the subject's own input.
            output: ``"probability"`` (softmax), ``"log_probability"`` or ``"logit"`` of the
                target class or token; a :class:`Similarity` target's score is the cosine whatever
                ``output`` says.

        Shape:
            returns ``(K,)`` for ``K`` variants (``(1,)`` without variants)
        """
        variants = [self.ids] if variants is None else list(variants)
        scores = torch.empty(len(variants))
        groups: dict[tuple[int, ...], list[int]] = {}                 # equal lengths together
        for index, variant in enumerate(variants):
            groups.setdefault(tuple(int(variant[side].shape[0]) for side in self.sides),
                              []).append(index)
        with eval_mode(self.model):
            for rows in groups.values():
                batch = {side: torch.stack([variants[i][side] for i in rows]).to(self.device)
                         for side in self.sides}                        # (K', T_side)
                scores[rows] = self.score_batch(batch, output=output).float().cpu()
        return scores

    def score_batch(self, ids: Mapping[str, Tensor], *, output: str = "probability",
                    embeddings: Mapping[str, Tensor] | None = None) -> Tensor:
        """The target's score for a batch of equal-length inputs (with gradients if enabled).

        Args:
            ids: ``{side: (K, T_side)}`` ids.
            output: see :meth:`score`.
            embeddings: ``{side: (K, T_side, E)}``, used instead of the token embedding of that
                side's ids (before any scaling or positions are added): what gradient methods
                differentiate with respect to.

        Shape:
            returns ``(K,)``
        """
        if output not in SCORES:
            raise ValueError(f"output must be one of {SCORES}, got {output!r}")
        with eval_mode(self.model), _replaced_token_embeddings(self, ids, embeddings or {}):
            return self._target_score(ids, output)

    def score_from_embeddings(self, *embeddings: Tensor, output: str = "logit") -> Tensor:
        """The target's score computed from token embeddings, one tensor per side in
        :attr:`sides` order — the forward function gradient methods (Captum) call.

        Shape:
            ``embeddings[i] (K, T_side_i, E)`` → ``(K,)``
        """
        if len(embeddings) != len(self.sides):
            raise ValueError(f"give one embedding tensor per side {self.sides}, got "
                             f"{len(embeddings)}")
        K = embeddings[0].shape[0]
        ids = {side: self.ids[side].to(self.device).expand(K, -1) for side in self.sides}
        return self.score_batch(ids, output=output, embeddings=dict(zip(self.sides, embeddings)))

    def token_embeddings(self) -> tuple[Tensor, ...]:
        """Each side's token embeddings ``(1, T_side, E)``, detached, in :attr:`sides` order."""
        with torch.no_grad():
            return tuple(token_embedding_module(self.model, side)(
                self.ids[side].to(self.device)[None]).detach() for side in self.sides)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _target_score(self, ids: Mapping[str, Tensor], output: str) -> Tensor:
        model, target = self.model, self.target
        if isinstance(target, Similarity):
            text = ids["text"]                                          # (K, T)
            hidden = model(text)                                        # (K, T, E)
            keep = (torch.ones_like(text, dtype=torch.bool) if model.config.pad_id is None
                    else text != model.config.pad_id)                   # (K, T)
            weights = keep.to(hidden.dtype).unsqueeze(-1)               # (K, T, 1)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)   # (K, E)
            reference = target.reference.to(pooled.device, pooled.dtype)
            return torch.nn.functional.cosine_similarity(pooled, reference[None], dim=-1)
        if isinstance(target, Label):
            logits = model(ids["text"])                                 # (K, C)
            index = target.label
        elif isinstance(target, NextToken):
            logits = model(ids["text"])[:, -1]                          # (K, V)
            index = target.token
        else:
            logits = model(ids["source"], ids["target"])[:, -1]         # (K, V)
            index = target.token
        logits = logits.float()
        if output == "logit":
            return logits[:, index]
        log_probabilities = torch.log_softmax(logits, dim=-1)[:, index]  # (K,)
        return log_probabilities if output == "log_probability" else log_probabilities.exp()


def subject(model: nn.Module, ids: Tensor | Sequence[int] | Mapping[str, Tensor | Sequence[int]],
            target: Target | None = None, *, tokenizer=None, target_tokenizer=None) -> Subject:
    """Resolve ``target`` against ``model`` and its input ``ids``.

    Args:
        model: a :class:`~qkv.SequenceClassifier`, :class:`~qkv.LanguageModel`,
            :class:`~qkv.Transformer` or :class:`~qkv.EncoderModel`, trained here or loaded.
        ids: the input ids: one sequence ``(T,)`` (or ``{"text": …}``) for the first, second and
            fourth; ``{"source": (S,), "target": (T,)}`` for a translation, the target being
            ``[bos] + output`` (e.g. :func:`qkv.views.explore.model_inputs`).
        target: :class:`Label` (classifier), :class:`NextToken` (language model),
            :class:`OutputToken` (translation), :class:`Similarity` (encoder; required there);
            default: the model's prediction (the predicted class, the next token after the
            input, the first output token).
        tokenizer: turns ids into the token strings views show and names the target; for a
            translation, the source side's (``target_tokenizer`` the target side's, default the
            same).

    Raises:
        TypeError: a model of another kind, a target that does not fit the model.
        ValueError: ids not one non-empty sequence of ints (per side), a class or token out of
            range, a position outside the input.

    Example:
        >>> import torch, qkv
        >>> from qkv.explain import subject, NextToken
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=20, d_model=16,
        ...     num_heads=2, num_layers=1, d_ff=32))
        >>> s = subject(model, [1, 5, 6, 7], NextToken(position=1))
        >>> s.ids["text"].tolist(), s.target.token                       # context, next id
        ([1, 5], 6)
        >>> s.score().shape
        torch.Size([1])
    """
    kind = next((cls for cls in _TARGETS if isinstance(model, cls)), None)
    if kind is None:
        raise TypeError(f"model must be a qkv SequenceClassifier, LanguageModel, Transformer or "
                        f"EncoderModel, got {type(model).__name__}")
    expected = _TARGETS[kind]
    if target is None:
        if expected is Similarity:
            raise ValueError("an EncoderModel has no prediction to explain: give "
                             "target=Similarity(reference), reference an (E,) vector")
        target = expected()
    if not isinstance(target, expected):
        raise TypeError(f"a {kind.__name__} is explained with a {expected.__name__} target, got "
                        f"{type(target).__name__}")
    sides = _sides(model, ids)
    tokenizers = {"text": tokenizer, "source": tokenizer,
                  "target": target_tokenizer or tokenizer}
    with eval_mode(model):
        sides, target, name = _resolve(model, sides, target, tokenizers)
    tokens = None
    if tokenizer is not None:
        tokens = {side: tokenizers[side].tokens(ids.tolist()) for side, ids in sides.items()}
    special = torch.cat([_special(tokenizers[side], ids) for side, ids in sides.items()])
    used = None if tokenizer is None else {side: tokenizers[side] for side in sides}
    return Subject(model, sides, target, name, tokens, special, used)


def _sides(model: nn.Module, ids) -> dict[str, Tensor]:
    wanted = ("source", "target") if isinstance(model, Transformer) else ("text",)
    if not isinstance(ids, Mapping):
        if wanted != ("text",):
            raise ValueError("a translation's input is {'source': ids, 'target': [bos] + output "
                             "ids}")
        ids = {"text": ids}
    if set(ids) != set(wanted):
        raise ValueError(f"ids must have the sides {list(wanted)}, got {sorted(ids)}")
    sides = {}
    for side in wanted:
        value = ids[side]
        tensor = value if isinstance(value, Tensor) else torch.tensor(list(value), dtype=torch.long)
        if tensor.dtype in (torch.bool,) or tensor.is_floating_point() or tensor.is_complex():
            raise ValueError(f"ids[{side!r}] must hold integer token ids, got {tensor.dtype}")
        if tensor.dim() == 2 and tensor.shape[0] == 1:
            tensor = tensor[0]
        if tensor.dim() != 1 or tensor.shape[0] == 0:
            raise ValueError(f"ids[{side!r}] must be one non-empty sequence (T,), got "
                             f"{shape_str(tensor.shape)}")
        sides[side] = tensor.long().cpu()
    return sides


def _resolve(model, sides: dict[str, Tensor], target: Target, tokenizers):
    device = next(model.parameters()).device
    if isinstance(target, Similarity):
        reference = target.reference
        E = model.config.d_model
        if not isinstance(reference, Tensor) or reference.shape != (E,):
            raise ValueError(f"Similarity.reference must be a tensor (E,) = ({E},), got "
                             f"{shape_str(reference.shape) if isinstance(reference, Tensor) else type(reference).__name__}")
        return sides, target, "similarity to the reference"
    if isinstance(target, Label):
        labels = list(model.labels)
        label = target.label
        if label is None:
            with torch.no_grad():
                label = int(model(sides["text"][None].to(device))[0].argmax())
        elif isinstance(label, str):
            if label not in labels:
                raise ValueError(f"label {label!r} is not one of the model's labels {labels}")
            label = labels.index(label)
        elif not isinstance(label, int) or not 0 <= label < len(labels):
            raise ValueError(f"label must be a label name or an index in [0, {len(labels)}), "
                             f"got {label!r}")
        return sides, Label(label), f"label {labels[label]!r}"
    side = "text" if isinstance(target, NextToken) else "target"
    ids = sides[side]
    T = int(ids.shape[0])
    if isinstance(target, NextToken):
        position = target.position
        if not isinstance(position, int) or not -T <= position < T:
            raise ValueError(f"NextToken.position must be in [-{T}, {T}) for {T} input ids, got "
                             f"{position!r}")
        position %= T
    else:
        outputs = T - 1                                                 # after <bos>
        index = target.index
        if not isinstance(index, int) or not -outputs - 1 <= index <= outputs or (
                index < 0 and outputs == 0):
            raise ValueError(f"OutputToken.index must be in [-{outputs}, {outputs}] for "
                             f"{outputs} output tokens, got {index!r}")
        position = index % (outputs + 1) if index >= 0 else outputs + index
    token = target.token
    if token is None and position + 1 < T:
        token = int(ids[position + 1])
    sides = {**sides, side: ids[: position + 1]}
    vocab = model.config.vocab_size if isinstance(model, LanguageModel) else (
        model.config.target_vocab_size)
    if token is None:
        with torch.no_grad():
            context = {name: value[None].to(device) for name, value in sides.items()}
            logits = (model(context["text"]) if side == "text"
                      else model(context["source"], context["target"]))
            token = int(logits[0, -1].argmax())
    if not isinstance(token, int) or not 0 <= token < vocab:
        raise ValueError(f"token must be an id in [0, {vocab}), got {token!r}")
    word = tokenizers[side].tokens([token])[0] if tokenizers[side] is not None else str(token)
    what = "next token" if side == "text" else "output token"
    resolved = (NextToken(position, token) if isinstance(target, NextToken)
                else OutputToken(position, token))
    return sides, resolved, f"{what} {word!r}"


def _special(tokenizer, ids: Tensor) -> Tensor:
    if tokenizer is None:
        return torch.zeros(ids.shape[0], dtype=torch.bool)
    specials = tokenizer.special_ids - {tokenizer.unk_id}
    return torch.tensor([i in specials for i in ids.tolist()], dtype=torch.bool)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Evaluation mode (no dropout) inside the block, the model's own mode restored after it."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        yield
    finally:
        for module, training in modes.items():
            module.training = training


def token_embedding_module(model: nn.Module, side: str) -> nn.Embedding:
    """The ``nn.Embedding`` that turns a side's ids into token vectors."""
    if isinstance(model, Transformer):
        return (model.src_embedding if side == "source" else model.tgt_embedding).token
    if isinstance(model, SequenceClassifier):
        return model.encoder.embedding.token
    return model.embedding.token


@contextlib.contextmanager
def _replaced_token_embeddings(subject: Subject, ids: Mapping[str, Tensor],
                               embeddings: Mapping[str, Tensor]) -> Iterator[None]:
    """While inside, the token embedding of ``ids[side]`` (that very tensor) is
    ``embeddings[side]``. Hooks recognise the call by its ids tensor, so a source and a target
    sharing one embedding matrix are told apart."""
    if not embeddings:
        yield
        return
    by_ids = {id(ids[side]): (side, value) for side, value in embeddings.items()}
    handles = []

    def hook(module, args, output):
        found = by_ids.get(id(args[0]))
        if found is None:
            return None
        side, value = found
        if value.shape != output.shape:
            raise ValueError(f"embeddings[{side!r}] must have shape {shape_str(output.shape)} "
                             f"(K, T, E), got {shape_str(value.shape)}")
        return value.to(output.dtype)

    for module in {token_embedding_module(subject.model, side) for side in embeddings}:
        handles.append(module.register_forward_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
