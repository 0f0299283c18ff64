"""From a model and a sentence to an attention document: tokenize, decode if needed, trace.

The one place where the views meet a live model: :func:`explore` builds the model's input the way
its task does, runs one traced forward pass (:func:`qkv.trace.trace`) and returns
:func:`qkv.trace.attention_document` of it, with the ``"prediction"`` of that same forward pass
(:mod:`qkv.views.contract`): a classifier's labels (:func:`classification_prediction`), a
translation's text (:func:`translation_prediction`), a language model's most probable next
tokens (:func:`next_token_prediction`). ``qkv view`` and ``qkv serve`` both call it.
"""

from __future__ import annotations

import torch
from torch import nn

from qkv._checks import check_positive_int
from qkv.models import EncoderModel, LanguageModel, SequenceClassifier, Transformer
from qkv.tokenizers.base import Tokenizer

__all__ = ["DEFAULT_TEXTS", "TASKS", "TooManyTokens", "classification_prediction", "explore",
           "labels_of", "model_inputs", "next_token_prediction", "translation_prediction"]

TASKS = ("translation", "language_model", "encoder", "classification")
# The sentence an explorer opens on, by task: a language model's stops where "dog" may follow.
DEFAULT_TEXTS = {"translation": "I love my dog", "language_model": "I love my",
                 "encoder": "I love my dog", "classification": "I love my dog"}
NEXT_TOKENS = 10  # next-token candidates a language model's prediction lists
# The models each task can run (classification: any model with labels, see labels_of).
_TASK_MODELS = {"translation": (Transformer,), "language_model": (LanguageModel,),
                "encoder": (EncoderModel, SequenceClassifier)}


class TooManyTokens(ValueError):
    """The text has more tokens than the limit; ``count`` and ``limit`` say by how much."""

    def __init__(self, what: str, count: int, limit: int) -> None:
        super().__init__(f"{what} has {count} tokens, more than the limit of {limit}; "
                         f"shorten it or raise max_tokens")
        self.count, self.limit = count, limit


def _check_length(what: str, ids: list[int], limit: int) -> list[int]:
    if len(ids) > limit:
        raise TooManyTokens(what, len(ids), limit)
    if not ids:
        raise ValueError(f"{what} has no tokens: give some text")
    return ids


def _check_arguments(model: object, task: object, source_tokenizer: object,
                     target_tokenizer: object, text: object, target_text: object,
                     max_tokens: object) -> None:
    """The checks :func:`model_inputs` and :func:`explore` share; errors name the argument."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a qkv model (a torch.nn.Module), got "
                        f"{type(model).__name__}")
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if task in _TASK_MODELS and not isinstance(model, _TASK_MODELS[task]):
        names = " or ".join(f"qkv.{kind.__name__}" for kind in _TASK_MODELS[task])
        raise ValueError(f"task {task!r} needs a {names}, got {type(model).__name__}")
    if not isinstance(source_tokenizer, Tokenizer):
        raise TypeError(f"source_tokenizer must be a qkv Tokenizer, got "
                        f"{type(source_tokenizer).__name__}")
    if target_tokenizer is not None and not isinstance(target_tokenizer, Tokenizer):
        raise TypeError(f"target_tokenizer must be a qkv Tokenizer or None, got "
                        f"{type(target_tokenizer).__name__}")
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if target_text is not None and not isinstance(target_text, str):
        raise TypeError(f"target_text must be a str or None, got {type(target_text).__name__}")
    check_positive_int("max_tokens", max_tokens)


def _check_finite(logits: torch.Tensor) -> None:
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("the model's logits hold NaN or ±inf (NaN or ±inf in its input or "
                         "parameters): there is no prediction to show")


def _limit(model: nn.Module, max_tokens: int) -> int:
    """``max_tokens``, lowered to the model's ``config.max_len`` (its positions) if it has one."""
    max_len = getattr(getattr(model, "config", None), "max_len", None)
    return max_tokens if max_len is None else min(max_tokens, int(max_len))


def labels_of(model: nn.Module) -> list[str]:
    """The label names of a classifier (``model.labels``); a ValueError for any other model."""
    labels = getattr(model, "labels", None)
    if (isinstance(labels, str) or not isinstance(labels, (list, tuple)) or not labels
            or not all(isinstance(label, str) for label in labels)):
        raise ValueError(f"task 'classification' needs a qkv.SequenceClassifier (a model with "
                         f".labels, a list of label names), got {type(model).__name__}")
    return list(labels)


def classification_prediction(labels: list[str], logits: torch.Tensor) -> dict:
    """The ``"prediction"`` field of a classifier's document, from the logits of one text.

    Args:
        labels: the label names, ``labels[i]`` scored by ``logits[i]``.
        logits: the classifier's output for one text.

    Shape:
        ``logits (C,)``, ``C = len(labels)``

    Returns:
        ``{"kind": "classification", "labels": [C], "logits": [C], "probabilities": [C],
        "label": the most probable label}``; the probabilities are ``softmax(logits)`` in
        float32, as :func:`qkv.decoding.classify.classify_texts` computes them.

    Example:
        >>> p = classification_prediction(["ham", "spam"], torch.tensor([0.0, 2.0]))
        >>> p["label"], [round(x, 4) for x in p["probabilities"]]
        ('spam', [0.1192, 0.8808])
    """
    logits = logits.detach().float().cpu()
    if logits.shape != (len(labels),):
        raise ValueError(f"logits must have shape (C,) = ({len(labels)},) for {len(labels)} "
                         f"labels, got {tuple(logits.shape)}")
    _check_finite(logits)
    probabilities = torch.softmax(logits, dim=-1)                               # (C,)
    return {"kind": "classification", "labels": list(labels), "logits": logits.tolist(),
            "probabilities": probabilities.tolist(),
            "label": labels[int(probabilities.argmax())]}


def next_token_prediction(tokenizer: Tokenizer, logits: torch.Tensor,
                          k: int = NEXT_TOKENS) -> dict:
    """The ``"prediction"`` field of a language model's document: the ``k`` likeliest next tokens.

    Args:
        tokenizer: turns the ids into the token strings the views show.
        logits: the model's output at the last position of the text.
        k: how many candidates (at most ``V``).

    Shape:
        ``logits (V,)``

    Returns:
        ``{"kind": "next_token", "tokens": [k], "ids": [k], "probabilities": [k]}``, most probable
        first; the probabilities are ``softmax(logits)`` over the whole vocabulary, in float32.

    Example:
        >>> from qkv.tokenizers import WordTokenizer
        >>> tokenizer = WordTokenizer.train(["I love my dog"])
        >>> logits = torch.zeros(tokenizer.vocab_size)
        >>> logits[tokenizer.encode("dog")[0]] = 3.0
        >>> p = next_token_prediction(tokenizer, logits, k=2)
        >>> p["tokens"][0], round(p["probabilities"][0], 4), len(p["ids"])
        ('dog', 0.7416, 2)
    """
    logits = logits.detach().float().cpu()
    if logits.dim() != 1:
        raise ValueError(f"logits must have shape (V,), got {tuple(logits.shape)}")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    _check_finite(logits)
    best = torch.softmax(logits, dim=-1).topk(min(k, logits.shape[0]))        # (k,)
    ids = best.indices.tolist()
    return {"kind": "next_token", "tokens": tokenizer.tokens(ids), "ids": ids,
            "probabilities": best.values.tolist()}


def translation_prediction(tokenizer: Tokenizer, target: list[int], *, greedy: bool) -> dict:
    """The ``"prediction"`` field of a translation's document: its target side as text.

    Args:
        tokenizer: the target tokenizer; its ``decode`` drops ``<bos>`` and the other specials.
        target: the target ids the traced forward pass read, ``<bos>`` first.
        greedy: whether they are the model's greedy output (else a target given by the reader).

    Example:
        >>> from qkv.tokenizers import WordTokenizer
        >>> tokenizer = WordTokenizer.train(["I love my dog"])
        >>> translation_prediction(tokenizer, [tokenizer.bos_id, *tokenizer.encode("my dog")],
        ...                        greedy=True)
        {'kind': 'translation', 'text': 'my dog', 'greedy': True}
    """
    return {"kind": "translation", "text": tokenizer.decode(target), "greedy": bool(greedy)}


def model_inputs(
    model: nn.Module,
    *,
    task: str,
    source_tokenizer: Tokenizer,
    target_tokenizer: Tokenizer | None = None,
    text: str,
    target_text: str | None = None,
    max_tokens: int = 512,
) -> dict[str, list[int]]:
    """The token ids a task feeds its model, by side: ``{"source", "target"}`` or ``{"text"}``.

    * ``"translation"``: source ``encode(text) + [eos]``; target ``[bos] + encode(target_text)``,
      or, without ``target_text``, ``[bos]`` + the model's greedy translation.
    * ``"language_model"``: ``[bos] + encode(text)`` (no ``bos`` if the tokenizer has none or
      its prompts go without, as GPT-2's: ``prompt_bos``).
    * ``"encoder"``: ``[bos] + encode(text) + [eos]`` where they exist (BERT's [CLS] … [SEP]).
    * ``"classification"``: as ``"encoder"``, what
      :func:`qkv.training.tasks.classification_ids` gives; the limit is also lowered to the
      tokenizer's ``max_length``, where it has one, as
      :func:`qkv.decoding.classify.input_limit` does — but a longer text is refused, not cut.

    Raises:
        TypeError: a model that is not a module, a tokenizer that is not a qkv Tokenizer, a
            text that is not a str, a ``max_tokens`` that is not an int.
        ValueError: an unknown task or one the model cannot run (translation: a
            ``qkv.Transformer``, language_model: a ``qkv.LanguageModel``, encoder: a
            ``qkv.EncoderModel`` or ``qkv.SequenceClassifier``), empty text, a tokenizer without
            a token the task needs, ``max_tokens`` < 1.
        TooManyTokens: a side longer than ``max_tokens`` (or the model's ``max_len``).
    """
    _check_arguments(model, task, source_tokenizer, target_tokenizer, text, target_text,
                     max_tokens)
    limit = _limit(model, max_tokens)
    encode = source_tokenizer.encode
    if task == "language_model":
        return {"text": _check_length("the text", source_tokenizer.prompt_ids(text), limit)}
    if task == "classification":                 # what classify_texts reads, never more
        from qkv.decoding.classify import input_limit
        limit = min(limit, input_limit(model.config, source_tokenizer))
    if task in ("encoder", "classification"):
        bos = [] if source_tokenizer.bos_id is None else [source_tokenizer.bos_id]
        eos = [] if source_tokenizer.eos_id is None else [source_tokenizer.eos_id]
        return {"text": _check_length("the text", bos + encode(text) + eos, limit)}
    target_tokenizer = target_tokenizer or source_tokenizer
    source_tokenizer.require("eos")
    target_tokenizer.require("bos", "eos")
    source = _check_length("the source text", encode(text) + [source_tokenizer.eos_id], limit)
    if target_text is not None:
        output = target_tokenizer.encode(target_text)
    else:
        from qkv.decoding import greedy

        device = next(model.parameters()).device
        output = greedy(model, torch.tensor([source], device=device),
                        bos_id=target_tokenizer.bos_id, eos_id=target_tokenizer.eos_id,
                        max_len=min(2 * len(source) + 10, limit - 1))[0]
    target = _check_length("the target text", [target_tokenizer.bos_id] + output, limit)
    return {"source": source, "target": target}


@torch.no_grad()
def explore(
    model: nn.Module,
    *,
    task: str,
    source_tokenizer: Tokenizer,
    target_tokenizer: Tokenizer | None = None,
    text: str,
    target_text: str | None = None,
    max_tokens: int = 512,
    detail: bool = True,
) -> dict:
    """The attention document of ``model`` on ``text``: every attention, layer and head.

    Args:
        model: a ``qkv.Transformer`` (task ``"translation"``), ``qkv.LanguageModel``
            (``"language_model"``), ``qkv.EncoderModel`` (``"encoder"``) or
            ``qkv.SequenceClassifier`` (``"classification"``); put it in eval mode.
        task: how to build the input, see :func:`model_inputs`.
        source_tokenizer, target_tokenizer: the tokenizers (the target one defaults to the source
            one; only translation uses it).
        text: the sentence; ``target_text`` the translation to teacher-force (default: greedy).
        max_tokens: the most tokens a side may have.
        detail: include queries, keys, values, scores… (the neuron and step views need them).

    Returns:
        the document of :mod:`qkv.trace.document`, its title the text, with the ``"prediction"``
        of the traced forward pass: a classifier's labels (:func:`classification_prediction`),
        a translation's target text (:func:`translation_prediction`), a language model's 10 most
        probable next tokens after the text (:func:`next_token_prediction`); an encoder's
        document has none.

    Raises:
        TypeError, ValueError, TooManyTokens: as :func:`model_inputs`; a ValueError too for a
        classification task without a classifier (:func:`labels_of`), and for a model whose
        attention weights or logits hold NaN or ±inf (there is nothing faithful to show).

    Example:
        >>> import qkv
        >>> from qkv.tokenizers import WordTokenizer
        >>> tokenizer = WordTokenizer.train(["I love my dog"])
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=tokenizer.vocab_size,
        ...     d_model=16, num_heads=2, num_layers=2, d_ff=32)).eval()
        >>> doc = explore(model, task="language_model", source_tokenizer=tokenizer,
        ...               text="I love my dog")
        >>> doc["sides"]["text"], len(doc["attentions"]), doc["prediction"]["kind"]
        (['<bos>', 'I', 'love', 'my', 'dog'], 2, 'next_token')
        >>> classifier = qkv.SequenceClassifier(qkv.SequenceClassifierConfig(
        ...     vocab_size=tokenizer.vocab_size, d_model=16, num_heads=2, num_layers=1, d_ff=32,
        ...     labels=["ham", "spam"])).eval()
        >>> doc = explore(classifier, task="classification", source_tokenizer=tokenizer,
        ...               text="I love my dog")
        >>> doc["attentions"][0]["name"], doc["prediction"]["labels"]
        ('encoder.layers.0.self_attention', ['ham', 'spam'])
    """
    from qkv.trace import attention_document, trace

    _check_arguments(model, task, source_tokenizer, target_tokenizer, text, target_text,
                     max_tokens)
    labels = labels_of(model) if task == "classification" else None
    ids = model_inputs(model, task=task, source_tokenizer=source_tokenizer,
                       target_tokenizer=target_tokenizer, text=text, target_text=target_text,
                       max_tokens=max_tokens)
    device = next(model.parameters()).device
    tensors = {side: torch.tensor([side_ids], device=device) for side, side_ids in ids.items()}
    with trace(model, device="cpu") as recorded:
        if task == "translation":
            output = model(tensors["source"], tensors["target"])
        else:
            output = model(tensors["text"])                 # classifier: logits (1, C)
    target_tokenizer = target_tokenizer or source_tokenizer
    tokenizers = {"source": source_tokenizer, "target": target_tokenizer,
                  "text": source_tokenizer}
    tokens = {side: tokenizers[side].tokens(side_ids) for side, side_ids in ids.items()}
    title = text if task != "translation" else (
        f"{text} → {target_tokenizer.decode(ids['target'])}")
    document = attention_document(recorded, tokens, title=title, detail=detail)
    if task == "classification":
        document["prediction"] = classification_prediction(labels, output[0])
    elif task == "language_model":
        document["prediction"] = next_token_prediction(source_tokenizer, output[0, -1])
    elif task == "translation":
        document["prediction"] = translation_prediction(target_tokenizer, ids["target"],
                                                        greedy=target_text is None)
    return document
