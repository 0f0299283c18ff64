"""Model configurations: small dataclasses, validated once, named as in the paper.

Every field defaults to the choice of "Attention Is All You Need" (post-norm, ReLU, sinusoidal
positions, embeddings scaled by √d_model), so a config states only where a model departs from it.
Configs are frozen; derive variants with :func:`dataclasses.replace`, save them with
:func:`dataclasses.asdict`.

Sizes have upper caps, far above real models (the largest vocabulary-by-width table of Llama 3.1
405B, 128,256 × 16,384, has 2.1e9 weights), so that an absurd or hostile config (a damaged
``checkpoint.json``, a foreign ``config.json``) is refused by name before anything is allocated:
each size at most :data:`MAX_SIZE`, at most :data:`MAX_LAYERS` layers and :data:`MAX_LABELS`
labels, at most :data:`MAX_TABLE` weights in one matrix or table (``vocab_size × d_model``,
``max_len × d_model``, ``d_ff × d_model``…) and at most :data:`MAX_WEIGHTS` in the layers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

from qkv._checks import check_bool, check_int, check_positive_int, check_probability

__all__ = ["ModelConfig", "TransformerConfig", "LanguageModelConfig", "EncoderModelConfig",
           "SequenceClassifierConfig", "MAX_SIZE", "MAX_LAYERS", "MAX_TABLE", "MAX_WEIGHTS",
           "MAX_LABELS"]

MAX_SIZE = 2**24       # any one size: vocab_size, d_model, d_ff, max_len, type_vocab_size
MAX_LAYERS = 1024      # num_layers
MAX_TABLE = 2**32      # weights in one matrix or table (16 GiB of float32)
MAX_WEIGHTS = 2**36    # in the layers: stacks · num_layers · (4·d_model² + 2·d_model·d_ff)
MAX_LABELS = 2**20     # classes of a classifier

POSITIONS = ("sinusoidal", "learned", "rotary")
ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "silu")
POOLINGS = ("cls", "mean")


@dataclass(frozen=True)
class ModelConfig:
    """The fields every qkv model shares.

    Args:
        vocab_size: number of token ids (the source vocabulary of a :class:`TransformerConfig`).
        d_model: E, the width of every token representation.
        num_heads: H, attention heads per attention layer; must divide ``d_model``.
        num_layers: N, layers per stack (encoder and decoder alike).
        d_ff: inner width of the position-wise feed-forward network.
        dropout: the paper's P_drop: on each sublayer's output before the residual addition, and
            on the sum of embeddings and positional encodings.
        attention_dropout: dropout on the attention weights (not in the paper; default off).
        max_len: the most positions a sequence may have (sizes the position tables).
        pad_id: the padding token id, masked out of every attention; ``None`` if there is none.
        positions: ``"sinusoidal"`` (the paper), ``"learned"`` (absolute, as BERT and GPT-2) or
            ``"rotary"`` (RoPE, applied to queries and keys inside self-attention).
        activation: of the feed-forward network: ``"relu"`` (the paper), ``"gelu"``,
            ``"gelu_tanh"`` (GELU's tanh approximation, as GPT-2) or ``"silu"`` (swish, as Marian).
        norm_first: ``False``: post-norm, the paper's ``LayerNorm(x + Sublayer(x))``; ``True``:
            pre-norm, ``x + Sublayer(LayerNorm(x))``, with a final LayerNorm after each stack.
        norm_eps: the LayerNorms' epsilon.
        bias: whether the attention projections and feed-forward layers have biases.
        scale_embeddings: multiply token embeddings by √d_model (the paper, section 3.4).
    """

    vocab_size: int
    d_model: int = 512
    num_heads: int = 8
    num_layers: int = 6
    d_ff: int = 2048
    dropout: float = 0.1
    attention_dropout: float = 0.0
    max_len: int = 512
    pad_id: int | None = 0
    positions: str = "sinusoidal"
    activation: str = "relu"
    norm_first: bool = False
    norm_eps: float = 1e-5
    bias: bool = True
    scale_embeddings: bool = True

    _STACKS: ClassVar[int] = 1       # layer stacks (an encoder-decoder has two)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "num_heads", "num_layers", "d_ff", "max_len"):
            check_positive_int(name, getattr(self, name))
        _check_sizes(self, ("vocab_size", "d_model", "d_ff", "max_len"))
        if self.num_layers > MAX_LAYERS:
            raise ValueError(f"num_layers must be at most {MAX_LAYERS} (qkv's cap), got "
                             f"{self.num_layers}")
        for rows in ("vocab_size", "max_len", "d_ff"):
            _check_table(self, rows, "d_model")
        layer_weights = self._STACKS * self.num_layers * (
            4 * self.d_model**2 + 2 * self.d_model * self.d_ff)
        if layer_weights > MAX_WEIGHTS:
            stacks = f"{self._STACKS} stacks × " if self._STACKS > 1 else ""
            raise ValueError(
                f"{stacks}num_layers × (4·d_model² + 2·d_model·d_ff) = "
                f"{stacks}{self.num_layers} × (4·{self.d_model}² + 2·{self.d_model}·{self.d_ff})"
                f" = {layer_weights:,} "
                f"weights in the layers, beyond qkv's cap of {MAX_WEIGHTS:,} (2**36, "
                f"MAX_WEIGHTS): refused before allocating them")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads}) so "
                f"that every head gets d_model / num_heads dims"
            )
        check_probability("dropout", self.dropout)
        check_probability("attention_dropout", self.attention_dropout)
        if self.pad_id is not None:
            check_int("pad_id", self.pad_id, minimum=0)
            if self.pad_id >= self.vocab_size:
                raise ValueError(
                    f"pad_id ({self.pad_id}) must be a token id below vocab_size ({self.vocab_size})"
                )
        _check_choice("positions", self.positions, POSITIONS)
        _check_choice("activation", self.activation, ACTIVATIONS)
        if self.positions == "rotary" and self.head_dim % 2:
            raise ValueError(
                f"rotary positions rotate pairs of dims: the head dim d_model / num_heads = "
                f"{self.head_dim} must be even"
            )
        check_bool("norm_first", self.norm_first)
        check_bool("bias", self.bias)
        check_bool("scale_embeddings", self.scale_embeddings)
        if (isinstance(self.norm_eps, bool) or not isinstance(self.norm_eps, (int, float))
                or not 0 < self.norm_eps < math.inf):
            raise ValueError(f"norm_eps must be a positive number, got {self.norm_eps!r}")

    @property
    def head_dim(self) -> int:
        """D = d_model / num_heads."""
        return self.d_model // self.num_heads

    def to_dict(self) -> dict:
        """The fields as a JSON-able dict; ``type(config)(**config.to_dict())`` rebuilds it."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TransformerConfig(ModelConfig):
    """The encoder–decoder of the paper.

    Args:
        tgt_vocab_size: the target vocabulary's size; ``None`` (default): ``vocab_size``. The
            resolved size is :attr:`target_vocab_size`.
        share_embeddings: one embedding matrix for source and target tokens (section 3.4; needs
            one vocabulary).
        tie_output: the pre-softmax linear layer reuses the target embedding matrix (3.4).

    Example:
        >>> from qkv import TransformerConfig
        >>> config = TransformerConfig.base(vocab_size=37000)
        >>> config.num_layers, config.d_model, config.d_ff, config.num_heads, config.dropout
        (6, 512, 2048, 8, 0.1)
    """

    tgt_vocab_size: int | None = None
    share_embeddings: bool = False
    tie_output: bool = True

    _STACKS: ClassVar[int] = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tgt_vocab_size is not None:
            check_positive_int("tgt_vocab_size", self.tgt_vocab_size)
            _check_sizes(self, ("tgt_vocab_size",))
            _check_table(self, "tgt_vocab_size", "d_model")
        check_bool("share_embeddings", self.share_embeddings)
        check_bool("tie_output", self.tie_output)
        if self.share_embeddings and self.target_vocab_size != self.vocab_size:
            raise ValueError(
                f"share_embeddings needs one vocabulary, but vocab_size is {self.vocab_size} and "
                f"tgt_vocab_size is {self.tgt_vocab_size}"
            )
        if self.pad_id is not None and self.pad_id >= self.target_vocab_size:
            raise ValueError(
                f"pad_id ({self.pad_id}) must be below tgt_vocab_size ({self.tgt_vocab_size})"
            )

    @property
    def target_vocab_size(self) -> int:
        """The target vocabulary's size: ``tgt_vocab_size``, or ``vocab_size`` if that is None."""
        return self.vocab_size if self.tgt_vocab_size is None else self.tgt_vocab_size

    @classmethod
    def base(cls, vocab_size: int, **changes) -> TransformerConfig:
        """The paper's base model (Table 3): N=6, d_model=512, d_ff=2048, h=8, P_drop=0.1, with
        one vocabulary shared by source, target and the output layer."""
        fields = dict(d_model=512, num_heads=8, num_layers=6, d_ff=2048, dropout=0.1,
                      share_embeddings=True, tie_output=True)
        return cls(vocab_size=vocab_size, **{**fields, **changes})

    @classmethod
    def big(cls, vocab_size: int, **changes) -> TransformerConfig:
        """The paper's big model (Table 3): N=6, d_model=1024, d_ff=4096, h=16, P_drop=0.3."""
        return cls.base(vocab_size, **{"d_model": 1024, "num_heads": 16, "d_ff": 4096,
                                       "dropout": 0.3, **changes})


@dataclass(frozen=True)
class LanguageModelConfig(ModelConfig):
    """A decoder-only language model (GPT-style).

    Args:
        tie_output: the output layer reuses the token embedding matrix.
    """

    tie_output: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_bool("tie_output", self.tie_output)


@dataclass(frozen=True)
class EncoderModelConfig(ModelConfig):
    """An encoder-only model (BERT-style) that returns hidden states.

    Args:
        type_vocab_size: number of token types (BERT's segments A/B); each type has a learned
            vector added to the embeddings. ``0`` (default): no token-type embeddings.
        embedding_norm: a LayerNorm (with ``norm_eps``) on the sum of token, position and type
            embeddings, before dropout (BERT).

    Example:
        >>> from qkv import EncoderModelConfig
        >>> config = EncoderModelConfig(vocab_size=100, type_vocab_size=2, embedding_norm=True)
        >>> config.type_vocab_size, config.embedding_norm
        (2, True)
    """

    type_vocab_size: int = 0
    embedding_norm: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("type_vocab_size", self.type_vocab_size, minimum=0)
        _check_sizes(self, ("type_vocab_size",))
        _check_table(self, "type_vocab_size", "d_model")
        check_bool("embedding_norm", self.embedding_norm)


@dataclass(frozen=True)
class SequenceClassifierConfig(EncoderModelConfig):
    """An encoder-only model with a classification head: one label per sequence.

    Args:
        labels: the label names, in the order of the head's outputs (class ``i`` is
            ``labels[i]``); at least two, distinct, non-empty.
        pooling: how the sequence becomes one vector: ``"cls"``, the first token's hidden state
            (BERT's ``[CLS]``, qkv's ``<bos>``), or ``"mean"``, the mean over non-padding tokens
            (sentence-transformers).
        pooler: a dense layer with tanh on the pooled vector before the head (BERT's pooler, as
            ``BertForSequenceClassification`` has it).
        classifier_dropout: dropout on the pooled vector before the head; ``None``: ``dropout``.

    Example:
        >>> from qkv import SequenceClassifierConfig
        >>> config = SequenceClassifierConfig(vocab_size=100, d_model=32, num_heads=4,
        ...                                   labels=["negative", "positive"], pooling="mean")
        >>> config.num_labels, config.labels
        (2, ('negative', 'positive'))
    """

    labels: tuple[str, ...] = ()
    pooling: str = "cls"
    pooler: bool = False
    classifier_dropout: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.labels, str) or not all(isinstance(x, str) for x in self.labels):
            raise TypeError(f"labels must be a sequence of label names (str), got {self.labels!r}")
        labels = tuple(self.labels)
        object.__setattr__(self, "labels", labels)      # a list (from JSON) becomes a tuple
        if len(labels) > MAX_LABELS:
            raise ValueError(f"a classifier may have at most {MAX_LABELS:,} labels (2**20, qkv's "
                             f"cap, MAX_LABELS), got {len(labels):,}")
        if len(labels) < 2:
            raise ValueError(f"a classifier needs at least 2 labels, got {list(labels)}")
        if any(not label.strip() for label in labels):
            raise ValueError(f"label names must not be empty, got {list(labels)}")
        if len(set(labels)) != len(labels):
            repeated = sorted({label for label in labels if labels.count(label) > 1})
            raise ValueError(f"label names must be distinct; repeated: {repeated}")
        _check_choice("pooling", self.pooling, POOLINGS)
        check_bool("pooler", self.pooler)
        if self.classifier_dropout is not None:
            check_probability("classifier_dropout", self.classifier_dropout)

    @property
    def num_labels(self) -> int:
        """C, the number of classes."""
        return len(self.labels)

    def encoder_config(self) -> EncoderModelConfig:
        """The encoder's part of this config (every field but the head's)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(EncoderModelConfig)}
        return EncoderModelConfig(**fields)


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _check_sizes(config: ModelConfig, names: tuple[str, ...]) -> None:
    """Each named size at most :data:`MAX_SIZE`."""
    for name in names:
        if getattr(config, name) > MAX_SIZE:
            raise ValueError(f"{name} must be at most {MAX_SIZE:,} (2**24, qkv's cap, "
                             f"MAX_SIZE), got {getattr(config, name):,}")


def _check_table(config: ModelConfig, rows: str, columns: str) -> None:
    """A matrix of ``rows × columns`` weights at most :data:`MAX_TABLE`."""
    size = getattr(config, rows) * getattr(config, columns)
    if size > MAX_TABLE:
        raise ValueError(f"{rows} × {columns} = {getattr(config, rows):,} × "
                         f"{getattr(config, columns):,} = {size:,} weights in one table, beyond "
                         f"qkv's cap of {MAX_TABLE:,} (2**32, MAX_TABLE): refused before "
                         f"allocating it")
