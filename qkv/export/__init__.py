"""Leaving qkv with a model: a Hugging Face folder that ``transformers`` loads, or an ONNX file
that ``onnxruntime`` runs.

Folder map: ``hf`` (:func:`to_huggingface`: which family, the files) with one conversion module
per ``transformers`` family — ``bert`` (:class:`~qkv.EncoderModel` → ``BertModel``,
:class:`~qkv.SequenceClassifier` → ``BertForSequenceClassification``), ``gpt2``
(:class:`~qkv.LanguageModel` → ``GPT2LMHeadModel``), ``marian`` (:class:`~qkv.Transformer` →
``MarianMTModel``), each the inverse of its loader in :mod:`qkv.pretrained` —; ``tokenizer``
(qkv's tokenizers as ``tokenizer.json``); ``onnx`` (:func:`to_onnx`, through
``torch.onnx.export``, checked with ``onnxruntime``); ``saved`` (:func:`export`: a saved run,
checkpoint or pretrained folder, by path); ``folder`` (writing a folder whole or not at all).
"""

from qkv.export.hf import to_huggingface
from qkv.export.onnx import to_onnx
from qkv.export.saved import FORMATS, export

__all__ = ["to_huggingface", "to_onnx", "export", "FORMATS"]
