"""A subject's model output as a whole — every class's or every token's logit at every position —
and its top predictions: what interventions and uncertainty read beyond the one target score."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from qkv.explain.subject import Subject, eval_mode
from qkv.explain.targets import Label, NextToken, Similarity

__all__ = ["output_logits", "prediction"]


def output_logits(subject: Subject, ids: Mapping[str, Tensor]) -> Tensor:
    """The model's logits for ``ids`` ``{side: (K, T_side)}`` in the model's current mode.

    Shape:
        a classifier's ``(K, C)``; a language model's or a translation's ``(K, T, V)``, row
        ``t`` predicting the token after position ``t`` (of the text, or of the target prefix).

    Raises:
        TypeError: a :class:`~qkv.explain.targets.Similarity` subject (an encoder has no
            distribution over outputs).
    """
    model, target = subject.model, subject.target
    if isinstance(target, Similarity):
        raise TypeError("an encoder's similarity target has no distribution over classes or "
                        "tokens (no logits, no entropy)")
    if isinstance(target, (Label, NextToken)):
        return model(ids["text"])                                       # (K, C) | (K, T, V)
    return model(ids["source"], ids["target"])                          # (K, T, V)


@torch.no_grad()
def prediction(subject: Subject, *, tokenizer=None, k: int = 5) -> list[dict]:
    """The model's ``k`` most probable classes or next tokens at the target's position, under
    whatever hooks are on: ``[{"id", "name", "probability"}, …]`` (``[]`` for a similarity)."""
    if isinstance(subject.target, Similarity):
        return []
    with eval_mode(subject.model):
        ids = {side: value[None].to(subject.device) for side, value in subject.ids.items()}
        logits = output_logits(subject, ids)[0]                         # (C,) | (T, V)
    logits = logits if logits.dim() == 1 else logits[-1]                # (C,) | (V,)
    probabilities = torch.softmax(logits.float(), dim=-1)
    top = probabilities.topk(min(k, probabilities.shape[0]))
    names = (list(subject.model.labels) if isinstance(subject.target, Label) else None)
    result = []
    for probability, index in zip(top.values.tolist(), top.indices.tolist()):
        if names is not None:
            name = names[index]
        elif tokenizer is not None:
            name = tokenizer.tokens([index])[0]
        else:
            name = str(index)
        result.append({"id": index, "name": name, "probability": probability})
    return result
