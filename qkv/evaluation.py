"""Scores of decoded text: BLEU and chrF with sacrebleu (the standard implementation), exact
match for the toy tasks; of classifiers: accuracy, F1 and the confusion matrix with
scikit-learn's metrics. Perplexity comes from :func:`qkv.training.trainer.evaluate_loss`."""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["bleu", "chrf", "exact_match", "bleu_tokenizer", "classification_scores"]

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


def classification_scores(predicted: Sequence[str], gold: Sequence[str],
                          labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-label precision / recall / F1 / support, and the confusion matrix
    (rows: the gold label, columns: the predicted one, both in the order of ``labels``), computed
    by scikit-learn. Accuracy and F1 are percentages.

    Example:
        >>> scores = classification_scores(["a", "b", "b"], ["a", "b", "a"], ["a", "b"])
        >>> round(scores["accuracy"], 1), round(scores["macro_f1"], 1), scores["confusion"]
        (66.7, 66.7, [[1, 1], [0, 1]])
        >>> scores["per_label"]["a"]
        {'precision': 100.0, 'recall': 50.0, 'f1': 66.666..., 'support': 2}
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    _check(predicted, gold)
    labels = list(labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=labels, zero_division=0)
    present = [i for i, count in enumerate(support) if count]       # labels the data holds
    return {
        "accuracy": 100.0 * accuracy_score(gold, predicted),
        "macro_f1": 100.0 * float(f1[present].mean()) if present else 0.0,
        "per_label": {label: {"precision": 100.0 * float(precision[i]),
                              "recall": 100.0 * float(recall[i]), "f1": 100.0 * float(f1[i]),
                              "support": int(support[i])} for i, label in enumerate(labels)},
        "labels": labels,
        "confusion": confusion_matrix(gold, predicted, labels=labels).tolist(),
    }
