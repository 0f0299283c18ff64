"""qkv: the Transformer's attention mechanism from the formula up, as a glass box.

Conventions: tensors are batch-first; a boolean mask is ``True`` where a query may attend;
shape letters are B batch, T query positions, S key positions, H heads, D head dim, E model dim.
"""

from qkv import attention, interop, models
from qkv.attention import (
    MultiHeadAttention,
    causal_mask,
    combine_masks,
    length_mask,
    padding_mask,
    scaled_dot_product_attention,
)
from qkv.decoding import BeamSearch, Greedy, Sampling, classify_texts, generate, translate
from qkv.interop import from_torch, mask_from_torch
from qkv.models import (
    Decoder,
    DecoderLayer,
    Embeddings,
    Encoder,
    EncoderDecoder,
    EncoderLayer,
    EncoderModel,
    EncoderModelConfig,
    FeedForward,
    KVCache,
    LanguageModel,
    LanguageModelConfig,
    LearnedPositions,
    ModelConfig,
    PostNorm,
    PreNorm,
    RotaryPositions,
    SequenceClassifier,
    SequenceClassifierConfig,
    SinusoidalPositions,
    Transformer,
    TransformerConfig,
)
from qkv.pretrained import embed_sentences, load_pretrained
from qkv.quantization import quantize
from qkv.trace import attention_document, trace
from qkv.training.checkpoint import load_checkpoint, save_checkpoint

__version__ = "0.1.0"

__all__ = [*attention.__all__, *models.__all__, *interop.__all__, "__version__",
           "trace", "attention_document", "load_checkpoint", "save_checkpoint",
           "translate", "generate", "classify_texts", "Greedy", "BeamSearch", "Sampling", "load_pretrained",
           "embed_sentences", "quantize"]
