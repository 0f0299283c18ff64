"""A sequence classifier: an encoder-only model, a pooling of its hidden states, a linear head.

``ids (B, T)`` → :class:`~qkv.EncoderModel` → hidden states ``(B, T, E)`` → pooled ``(B, E)``
(the first token, or the mean over non-padding tokens) → [BERT's pooler: dense + tanh] →
dropout → linear → logits ``(B, C)``, one score per label. It is an encoder with a head, so
``qkv.trace`` and every view see its attention under ``encoder.layers.i.self_attention``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from qkv._checks import check_integer_tensor, check_tensor, shape_str
from qkv.models.config import SequenceClassifierConfig
from qkv.models.encoder_model import EncoderModel

__all__ = ["SequenceClassifier"]


class SequenceClassifier(nn.Module):
    """Token ids → one logit per label.

    Args:
        config: a :class:`~qkv.models.config.SequenceClassifierConfig`; its ``labels`` name the
            outputs.

    Attributes:
        encoder: the :class:`~qkv.EncoderModel`.
        pooler: BERT's ``Linear(E, E)`` + tanh on the pooled vector, or ``None``.
        dropout: on the pooled vector.
        classifier: ``Linear(E, C)``, the head.

    Example:
        >>> import torch, qkv
        >>> config = qkv.SequenceClassifierConfig(vocab_size=50, d_model=32, num_heads=4,
        ...     num_layers=2, d_ff=64, labels=["ham", "spam"], pooling="mean")
        >>> model = qkv.SequenceClassifier(config).eval()
        >>> logits = model(torch.tensor([[1, 7, 8, 2, 0], [1, 9, 2, 0, 0]]))   # 0 = padding
        >>> logits.shape                                                    # (B, C)
        torch.Size([2, 2])
        >>> model.labels
        ('ham', 'spam')
    """

    def __init__(self, config: SequenceClassifierConfig) -> None:
        super().__init__()
        if not isinstance(config, SequenceClassifierConfig):
            raise TypeError(f"config must be a SequenceClassifierConfig, got "
                            f"{type(config).__name__}")
        self.config = config
        self.encoder = EncoderModel(config.encoder_config())
        self.pooler = nn.Linear(config.d_model, config.d_model) if config.pooler else None
        dropout = config.dropout if config.classifier_dropout is None else config.classifier_dropout
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.d_model, config.num_labels)

    @property
    def labels(self) -> tuple[str, ...]:
        """The label names; output ``i`` scores ``labels[i]``."""
        return self.config.labels

    def forward(
        self, ids: Tensor, mask: Tensor | None = None, token_types: Tensor | None = None
    ) -> Tensor:
        """Logits over the labels (unnormalised; ``softmax`` gives the probabilities).

        Args:
            ids: token ids, the first token of each row being the one ``"cls"`` pooling reads.
            mask: which positions may be attended (``True`` = may attend); default: every
                non-padding one. ``"mean"`` pooling averages over the same positions.
            token_types: token types (segments), for a config with ``type_vocab_size``.

        Shape:
            ``ids (B, T)`` → ``(B, C)``; ``mask (B, T)`` or ``(B, 1, 1, T)``

        A row needs a token to be classified: ``T = 0`` is refused. A row that is all padding
        (no ``True`` in its mask) is classified from what pooling makes of no token — the first
        position's hidden state (``"cls"``) or the zero vector (``"mean"``) — so give every row
        at least one real token.

        Raises:
            TypeError: ids that are not an integer tensor, a mask that is not a bool tensor.
            ValueError: ids not ``(B, T)`` with ``T ≥ 1``, outside the vocabulary or longer
                than ``max_len``; a mask of another shape.
        """
        check_integer_tensor("ids", ids, "integer tensor of token ids")  # the encoder checks
        if ids.dim() != 2 or ids.shape[1] == 0:                         # the rest
            raise ValueError(f"ids must have shape (B, T) with T >= 1 (a token to classify), "
                             f"got {shape_str(ids.shape)}")
        key_mask = self._key_mask(ids, mask)                            # (B, T) or None
        attention_mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, T)
        hidden = self.encoder(ids, attention_mask, token_types)         # (B, T, E)
        pooled = self.pool(hidden, key_mask)                            # (B, E)
        if self.pooler is not None:
            pooled = torch.tanh(self.pooler(pooled))                    # (B, E)
        return self.classifier(self.dropout(pooled))                    # (B, C)

    def pool(self, hidden: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """One vector per sequence: the first position (``"cls"``) or the mean over the positions
        where ``key_mask`` is ``True`` (``"mean"``; all positions if it is ``None``).

        Shape:
            ``hidden (B, T, E)``, ``key_mask (B, T)`` → ``(B, E)``
        """
        if self.config.pooling == "cls":
            return hidden[:, 0]                                         # (B, E)
        if key_mask is None:
            return hidden.mean(dim=1)                                   # (B, E)
        weights = key_mask.to(hidden.dtype).unsqueeze(-1)               # (B, T, 1)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def _key_mask(self, ids: Tensor, mask: Tensor | None) -> Tensor | None:
        """The ``(B, T)`` mask of real tokens: from ``mask`` if given (a ``(B, T)`` one, or a
        ``(B, 1, 1, T)`` padding mask), else from the pad id."""
        if mask is None:
            return None if self.config.pad_id is None else ids != self.config.pad_id
        if check_tensor("mask", mask).dtype != torch.bool:
            raise TypeError(f"mask must be a bool tensor (True = a real token), got {mask.dtype}")
        if mask.dim() == 4 and mask.shape[1:3] == (1, 1):
            mask = mask[:, 0, 0]                                        # (B, T)
        if mask.dim() != 2 or mask.shape[-1] != ids.shape[-1] or mask.shape[0] not in (1, ids.shape[0]):
            raise ValueError(f"mask must be (B, T) = {shape_str(ids.shape)} or (B, 1, 1, T), "
                             f"got {shape_str(mask.shape)}")
        return mask.expand(ids.shape[0], -1)
