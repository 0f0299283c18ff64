"""Pretrained checkpoints: Hugging Face-format folders loaded into qkv's own modules.

:func:`load_pretrained` reads a local folder (never the network) and returns ``(model,
tokenizer)``; everything qkv offers — tracing, views, explanation — then works on a model that
was really trained. Folder map: ``loader`` (inspecting a folder, reading weights, dispatching,
errors), one conversion module per family — ``bert`` (BERT, MiniLM → :class:`qkv.EncoderModel`;
``BertForSequenceClassification`` → :class:`qkv.SequenceClassifier`; and
:func:`classifier_from_pretrained`, a pretrained encoder under a fresh classification head),
``gpt2`` (→ :class:`qkv.LanguageModel`), ``marian`` (→ :class:`qkv.Transformer`) —,
``tokenizers`` (the families' tokenizers) and ``sentence_embeddings`` (mean pooling, as
sentence-transformers).
"""

from qkv.pretrained.bert import classifier_from_pretrained
from qkv.pretrained.loader import load_pretrained, minilm_path
from qkv.pretrained.sentence_embeddings import embed_sentences, mean_pool
from qkv.pretrained.tokenizers import HuggingFaceTokenizer, MarianTokenizer

__all__ = [
    "load_pretrained",
    "minilm_path",
    "classifier_from_pretrained",
    "embed_sentences",
    "mean_pool",
    "HuggingFaceTokenizer",
    "MarianTokenizer",
]
