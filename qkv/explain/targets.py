"""What an explanation explains: the *target*, one number the model computes from its input.

* :class:`Label` — a class of a :class:`~qkv.SequenceClassifier` (default: the predicted one);
* :class:`NextToken` — the token a :class:`~qkv.LanguageModel` predicts after a position;
* :class:`OutputToken` — one output token of a translation (:class:`~qkv.Transformer`): the
  explanation scores the source tokens and the target prefix before it;
* :class:`Similarity` — for an :class:`~qkv.EncoderModel` (a sentence-embedding model such as
  MiniLM): the cosine similarity of the text's mean-pooled embedding to a reference vector.

A target is a plain description; :func:`qkv.explain.subject` resolves it against a model and an
input (which class, which token id, which prefix).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["Label", "NextToken", "OutputToken", "Similarity", "Target"]


@dataclass(frozen=True)
class Label:
    """A class of a sequence classifier: its index or its name; ``None`` = the predicted class."""

    label: int | str | None = None


@dataclass(frozen=True)
class NextToken:
    """The token a language model predicts after ``position`` of the input ids.

    Args:
        position: index in the input ids (negative counts from the end); the explained context
            is ``ids[: position + 1]``.
        token: the token id explained; ``None`` = the next id of the input if there is one, else
            the model's most probable token.
    """

    position: int = -1
    token: int | None = None


@dataclass(frozen=True)
class OutputToken:
    """One output token of a translation.

    Args:
        index: which output token, 0 = the first after ``<bos>`` (negative counts from the end
            of the given output). The target ids are ``[bos] + output``; output token ``index``
            is predicted from the prefix ``target[: index + 1]``. ``index = len(output)`` (or a
            target of ``[bos]`` alone) explains the model's prediction after the whole output.
        token: the token id explained; ``None`` = the given output token (the model's most
            probable token past the end of the output).
    """

    index: int = 0
    token: int | None = None


@dataclass(frozen=True)
class Similarity:
    """Cosine similarity of an encoder's mean-pooled output to ``reference``.

    Shape:
        ``reference (E,)``: e.g. the embedding of another sentence
        (:func:`qkv.embed_sentences` before normalisation, or the same pooling of this model).
    """

    reference: Tensor


Target = Label | NextToken | OutputToken | Similarity
