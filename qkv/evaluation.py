"""Scores of decoded text: BLEU and chrF with sacrebleu (the standard implementation), exact
match for the toy tasks; perplexity comes from :func:`qkv.training.trainer.evaluate_loss`."""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["bleu", "chrf", "exact_match", "bleu_tokenizer"]

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA_HANGUL = re.compile(r"[\u3040-\u30ff\u1100-\u11ff\uac00-\ud7af]")


def bleu_tokenizer(references: Sequence[str]) -> str:
    """sacrebleu's tokenizer for the references' language: ``"char"`` where there is Japanese
    kana or Korean Hangul (every character a word; sacrebleu's own ja/ko tokenizers need MeCab),
    ``"zh"`` for Chinese (each Han character a word, other text as ``13a``), else ``"13a"``.

    Example:
        >>> bleu_tokenizer(["我爱我的狗"]), bleu_tokenizer(["これはペンです"]), bleu_tokenizer(["I"])
        ('zh', 'char', '13a')
    """
    if any(_KANA_HANGUL.search(r) for r in references):
        return "char"
    return "zh" if any(_HAN.search(r) for r in references) else "13a"


def _check(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if not references:
        raise ValueError("nothing to score: no references")


def bleu(hypotheses: Sequence[str], references: Sequence[str], *, tokenize: str | None = None) -> float:
    """Corpus BLEU (0–100) of ``hypotheses`` against one reference each.

    Example:
        >>> round(bleu(["我爱我的狗", "我的猫很饿"], ["我爱我的狗", "我的猫很渴"]), 1)
        83.8
    """
    import sacrebleu
    _check(hypotheses, references)
    tokenize = tokenize or bleu_tokenizer(references)
    return sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize=tokenize).score


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (0–100), character n-gram F-score."""
    import sacrebleu
    _check(hypotheses, references)
    return sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score


def exact_match(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Percentage of hypotheses equal to their reference (after trimming spaces).

    Example:
        >>> exact_match(["1 2 3", "3 2"], ["1 2 3", "2 3"])
        50.0
    """
    _check(hypotheses, references)
    return 100.0 * sum(h.strip() == r.strip() for h, r in zip(hypotheses, references)) / len(references)
