"""The Transformer's parts and the three model families built from them.

Folder map: ``config`` (dataclass configs), ``positions`` (sinusoidal, learned, rotary),
``feed_forward``, ``residual`` (post-/pre-norm), ``embeddings``, ``layers`` (encoder and decoder
layers), ``stacks`` (N layers), ``cache`` (KV cache), and the models: ``transformer``
(encoder–decoder), ``language_model`` (decoder-only), ``encoder_model`` (encoder-only), and
``classifier`` (an encoder with a classification head).
"""

from qkv.models.cache import KVCache
from qkv.models.config import (
    EncoderModelConfig,
    LanguageModelConfig,
    ModelConfig,
    SequenceClassifierConfig,
    TransformerConfig,
)
from qkv.models.classifier import SequenceClassifier
from qkv.models.embeddings import Embeddings
from qkv.models.encoder_model import EncoderModel
from qkv.models.feed_forward import FeedForward
from qkv.models.language_model import LanguageModel
from qkv.models.layers import DecoderLayer, EncoderLayer
from qkv.models.positions import LearnedPositions, RotaryPositions, SinusoidalPositions
from qkv.models.residual import PostNorm, PreNorm
from qkv.models.stacks import Decoder, Encoder, EncoderDecoder
from qkv.models.transformer import Transformer

__all__ = [
    "Transformer",
    "LanguageModel",
    "EncoderModel",
    "SequenceClassifier",
    "ModelConfig",
    "TransformerConfig",
    "LanguageModelConfig",
    "EncoderModelConfig",
    "SequenceClassifierConfig",
    "KVCache",
    "Encoder",
    "Decoder",
    "EncoderDecoder",
    "EncoderLayer",
    "DecoderLayer",
    "FeedForward",
    "PostNorm",
    "PreNorm",
    "Embeddings",
    "SinusoidalPositions",
    "LearnedPositions",
    "RotaryPositions",
]
