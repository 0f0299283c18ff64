"""Sentence embeddings from a BERT-family encoder, as sentence-transformers computes them.

A sentence's vector is the mean of its tokens' last hidden states (``[CLS]`` and ``[SEP]``
included, padding excluded), scaled to unit length, so that a dot product is a cosine
similarity: ``embedding = normalize(Σ_t valid_t · h_t / Σ_t valid_t)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from qkv._checks import check_positive_int
from qkv.models.encoder_model import EncoderModel
from qkv.models.inference import unpadded_hidden_states
from qkv.pretrained.bert import bert_inputs

__all__ = ["embed_sentences", "mean_pool"]


def mean_pool(hidden: Tensor, valid: Tensor) -> Tensor:
    """The mean of the hidden states of the valid (non-padding) tokens of each row.

    Shape:
        ``hidden (B, T, E)``, ``valid (B, T)`` bool → ``(B, E)``

    Example:
        >>> import torch
        >>> hidden = torch.tensor([[[1.0], [3.0], [100.0]]])               # the last is padding
        >>> mean_pool(hidden, torch.tensor([[True, True, False]]))
        tensor([[2.]])
    """
    weights = valid.to(hidden.dtype)[..., None]                         # (B, T, 1)
    total = (hidden * weights).sum(dim=1)                               # (B, E)
    return total / weights.sum(dim=1).clamp(min=1e-9)                   # (B, E)


@torch.no_grad()
def embed_sentences(
    model: EncoderModel,
    tokenizer,
    sentences: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int | None = None,
    normalize: bool = True,
) -> Tensor:
    """One vector per sentence: mean pooling over the tokens, then L2 normalisation.

    Sentences are tokenized with ``[CLS]``/``[SEP]`` around them, run in batches (each padded
    to its longest sentence; padding is masked out of attention and of the mean, and skipped by
    the projections and feed-forward networks: :func:`~qkv.models.inference.unpadded_hidden_states`).

    Args:
        model: a BERT-family :class:`qkv.EncoderModel` (e.g. from ``load_pretrained("minilm")``).
        tokenizer: its tokenizer (``bos_id`` = ``[CLS]``, ``eos_id`` = ``[SEP]``, ``pad_id``).
        sentences: the texts.
        batch_size: sentences per forward pass.
        max_length: tokens per sentence, special ones included; longer ones are truncated.
            Default: the tokenizer's ``max_length`` (256 for all-MiniLM-L6-v2, as in
            sentence-transformers) or else the model's ``max_len``.
        normalize: scale each vector to unit length (sentence-transformers' ``Normalize``).

    Shape:
        returns ``(N, E)``, N = ``len(sentences)``, float32 on the model's device.

    Example:
        >>> from qkv.pretrained import embed_sentences, load_pretrained
        >>> model, tokenizer = load_pretrained("minilm")
        >>> vectors = embed_sentences(
        ...     model, tokenizer, ["I love my dog", "I adore my puppy", "Stocks fell today"])
        >>> vectors.shape
        torch.Size([3, 384])
        >>> similarity = vectors @ vectors.T                              # cosine similarities
        >>> bool(similarity[0, 1] > similarity[0, 2])
        True
    """
    if not isinstance(model, EncoderModel):
        raise TypeError(f"model must be a qkv.EncoderModel, got {type(model).__name__}")
    if isinstance(sentences, str):
        raise TypeError("sentences must be a sequence of str, got one str; wrap it in a list")
    batch_size = check_positive_int("batch_size", batch_size)
    if max_length is None:
        max_length = getattr(tokenizer, "max_length", None) or model.config.max_len
    max_length = min(max_length, model.config.max_len)
    device = next(model.parameters()).device
    vectors = []
    for start in range(0, len(sentences), batch_size):
        ids, valid = bert_inputs(tokenizer, sentences[start:start + batch_size], max_length)
        ids, valid = ids.to(device), valid.to(device)
        hidden = unpadded_hidden_states(model, ids, valid)              # (B, T, E)
        vectors.append(mean_pool(hidden, valid))                        # (B, E)
    if not vectors:
        return torch.empty(0, model.config.d_model, device=device)
    embeddings = torch.cat(vectors)                                     # (N, E)
    return F.normalize(embeddings, p=2, dim=1) if normalize else embeddings
