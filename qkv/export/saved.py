"""Exporting a saved model by path: a qkv run or checkpoint folder, or a Hugging Face-format
folder that qkv loads (``"minilm"`` too) — what ``qkv export`` does."""

from __future__ import annotations

from pathlib import Path

from qkv.export.hf import to_huggingface
from qkv.export.onnx import to_onnx

__all__ = ["export", "FORMATS"]

FORMATS = {"hf": to_huggingface, "onnx": to_onnx}


def export(path: str | Path, folder: str | Path, *, format: str = "hf",
           overwrite: bool = False) -> Path:
    """Load the model at ``path`` with its tokenizers and write it to ``folder`` as ``format``.

    Args:
        path: a qkv checkpoint or run folder (its latest checkpoint), or a Hugging Face-format
            folder (``config.json`` + ``model.safetensors``) or ``"minilm"``.
        folder: the folder to create.
        format: ``"hf"`` (:func:`~qkv.export.to_huggingface`) or ``"onnx"``
            (:func:`~qkv.export.to_onnx`).
        overwrite: replace an existing ``folder``.

    Returns:
        The folder.

    Example:
        >>> import tempfile, qkv
        >>> from qkv.tokenizers import CharTokenizer
        >>> tokenizer = CharTokenizer.train(["abc"])
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=tokenizer.vocab_size,
        ...     d_model=16, num_heads=2, num_layers=1, d_ff=32, norm_first=True,
        ...     scale_embeddings=False))
        >>> run = tempfile.mkdtemp()
        >>> _ = qkv.save_checkpoint(run, model=model, task="language_model", step=0,
        ...                         source_tokenizer=tokenizer, target_tokenizer=tokenizer)
        >>> folder = export(run, tempfile.mkdtemp() + "/gpt2")
        >>> sorted(p.name for p in folder.iterdir())
        ['config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json',
         'tokenizer_config.json']
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(map(repr, FORMATS))}, got {format!r}")
    model, source, target = _load(path)
    return FORMATS[format](model, folder, tokenizer=source,
                           target_tokenizer=None if target is source else target,
                           overwrite=overwrite)


def _load(path: str | Path):
    """``(model, source tokenizer, target tokenizer)`` of a checkpoint or a pretrained folder."""
    if str(path) == "minilm" or (Path(path) / "config.json").is_file():
        from qkv.pretrained import load_pretrained

        model, tokenizer = load_pretrained(path)
        return model, tokenizer, tokenizer
    from qkv.training.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(path)
    return checkpoint.model, checkpoint.source_tokenizer, checkpoint.target_tokenizer
