"""From a text and a target in words to a :class:`~qkv.explain.Subject`, and from head names in
words to the heads :func:`qkv.explain.ablate` takes: what ``qkv explain`` and ``qkv serve`` share.

The target is given as the command line and the explorer's URL give it, as strings:

* a classifier: ``target`` = a label name or index (default: the predicted label);
* a language model: ``target`` = a position in the text's tokens as the model reads them
  (``<bos>`` first where it has one; negative counts from the end; default ``-1``, the last:
  the *next* token after the text), ``token`` = the token explained (default: the text's own
  next token, or past its end the model's most probable one);
* a translation: ``target`` = the index of the output token (default 0, the first),
  ``target_text`` = the translation to teacher-force (default: the model's greedy one, as
  :func:`qkv.views.explore.model_inputs` makes it), ``token`` as for a language model;
* an encoder (MiniLM): ``reference`` = another text, required: the target is the cosine
  similarity of the text's mean-pooled embedding to the reference's (:class:`Similarity`).

Every refusal is a ValueError of one line that says what was expected and what came.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from qkv.explain.subject import Subject, eval_mode, subject
from qkv.explain.targets import Label, NextToken, OutputToken, Similarity
from qkv.models import EncoderModel, LanguageModel, SequenceClassifier, Transformer

__all__ = ["API_NAMES", "CLI_NAMES", "TASK_OF", "ablation", "attention_heads", "json_ready",
           "parse_heads", "task_of", "text_subject"]

TASK_OF = {SequenceClassifier: "classification", LanguageModel: "language_model",
           Transformer: "translation", EncoderModel: "encoder"}
CLI_NAMES = {"target": "--target", "token": "--token", "target_text": "--target-text",
             "reference": "--reference"}
API_NAMES = {"target": "target", "token": "token", "target_text": "target_text",
             "reference": "reference"}
_WHAT = {"classification": "a label name or index", "language_model": "a position in the text",
         "translation": "an output-token index", "encoder": "the similarity to --reference"}


def task_of(model: nn.Module) -> str:
    """The task of a qkv model: ``"classification"``, ``"language_model"``, ``"translation"``
    or ``"encoder"``."""
    for kind, task in TASK_OF.items():
        if isinstance(model, kind):
            return task
    raise TypeError(f"model must be a qkv SequenceClassifier, LanguageModel, Transformer or "
                    f"EncoderModel, got {type(model).__name__}")


def _int(value: str | int, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"{what}, got {value!r}") from None


def _token_id(tokenizer, token: str | int, vocab: int, flag: str = "--token") -> int:
    """The id of one token named by its text (as the tokenizer writes it, or as it encodes)."""
    if isinstance(token, int) and not isinstance(token, bool):
        if not 0 <= token < vocab:
            raise ValueError(f"{flag} must be an id in [0, {vocab}), got {token}")
        return token
    text = str(token)
    if not text:
        raise ValueError(f"{flag} is empty: name the token to explain")
    for candidate in (text, " " + text):
        ids = tokenizer.encode(candidate)
        if len(ids) == 1 and tokenizer.tokens(ids)[0] == text:
            return ids[0]
    for candidate in (text, " " + text):
        ids = tokenizer.encode(candidate)
        if len(ids) == 1:
            return ids[0]
    pieces = tokenizer.tokens(tokenizer.encode(text))
    raise ValueError(f"{flag} must name one token, got {text!r}, which is {len(pieces)} "
                     f"tokens {pieces}")


def text_subject(model: nn.Module, *, source_tokenizer, target_tokenizer=None, text: str,
                 target: str | int | None = None, token: str | int | None = None,
                 target_text: str | None = None, reference: str | None = None,
                 task: str | None = None, max_tokens: int = 512,
                 names: Mapping[str, str] = CLI_NAMES) -> Subject:
    """The subject of ``model`` on ``text``, its target given in words (see the module's doc).

    Args:
        model: a qkv model, trained or loaded (eval mode).
        source_tokenizer, target_tokenizer: the tokenizers (the target one only for a
            translation; default the source one).
        text: the input.
        target: a label name or index / a position / an output-token index (str or int).
        token: the token explained (language model, translation): its text or id.
        target_text: the translation to teacher-force.
        reference: an encoder's reference text.
        task: the model's task (default: from its class, :func:`task_of`).
        max_tokens: the most tokens a side (and the reference) may have.
        names: what the messages call the options: :data:`CLI_NAMES` (``--target``…) or
            :data:`API_NAMES` (the explorer's query parameters).

    Returns:
        a :class:`~qkv.explain.Subject` with its tokens (for the views).

    Raises:
        ValueError: an option that does not fit the model (``--reference`` for a classifier, a
            ``--target`` that is no label…), a target out of range, a text too long
            (:class:`~qkv.views.explore.TooManyTokens`) or empty.

    Example:
        >>> import qkv
        >>> from qkv.tokenizers import WordTokenizer
        >>> tokenizer = WordTokenizer.train(["I love my dog"])
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=tokenizer.vocab_size,
        ...     d_model=16, num_heads=2, num_layers=1, d_ff=32)).eval()
        >>> s = text_subject(model, source_tokenizer=tokenizer, text="I love my dog", target=2)
        >>> s.tokens["text"], s.target_name
        (['<bos>', 'I', 'love'], "next token 'my'")
    """
    from qkv.views.explore import model_inputs

    task = task or task_of(model)
    target_tokenizer = target_tokenizer or source_tokenizer
    n = {**CLI_NAMES, **names}
    _refuse_options(task, n, target=target, token=token, target_text=target_text,
                    reference=reference)
    ids = model_inputs(model, task=task, source_tokenizer=source_tokenizer,
                       target_tokenizer=target_tokenizer, text=text, target_text=target_text,
                       max_tokens=max_tokens)
    options = {"tokenizer": source_tokenizer, "target_tokenizer": target_tokenizer}
    if task == "classification":
        labels = list(model.labels)
        if target is None or target == "":
            resolved = Label()
        elif str(target) in labels:
            resolved = Label(str(target))
        else:
            index = _int(target, f"{n['target']} must be one of the labels {labels} or an index "
                                 f"in [0, {len(labels)})")
            if not 0 <= index < len(labels):
                raise ValueError(f"{n['target']} {index} is out of range: the model has "
                                 f"{len(labels)} labels {labels} (indices 0…{len(labels) - 1})")
            resolved = Label(index)
        return subject(model, ids["text"], resolved, **options)
    if task == "encoder":
        if not reference or not reference.strip():
            raise ValueError(f"an encoder has no prediction to explain: give {n['reference']} "
                             "\"another text\" (the target is the cosine similarity of the two "
                             "texts' mean-pooled embeddings)")
        return subject(model, ids["text"], Similarity(_embedding(
            model, source_tokenizer, reference, max_tokens)), **options)
    if task == "language_model":
        T = len(ids["text"])
        position = -1 if target in (None, "") else _int(
            target, f"{n['target']} must be a position in the text's {T} tokens for a language "
                    f"model (0…{T - 1}, or -{T}…-1 from the end)")
        if not -T <= position < T:
            raise ValueError(f"{n['target']} {position} is out of range: the text has {T} tokens "
                             f"(positions 0…{T - 1}, or -{T}…-1 from the end)")
        tid = None if token in (None, "") else _token_id(source_tokenizer, token,
                                                          model.config.vocab_size, n["token"])
        return subject(model, ids["text"], NextToken(position, tid), **options)
    outputs = len(ids["target"]) - 1
    index = 0 if target in (None, "") else _int(
        target, f"{n['target']} must be an output-token index for a translation (0…{outputs})")
    if not -outputs <= index <= outputs or (index < 0 and outputs == 0):
        raise ValueError(f"{n['target']} {index} is out of range: the translation has {outputs} "
                         f"output tokens (indices 0…{outputs}, {outputs} = the token after them)")
    tid = None if token in (None, "") else _token_id(target_tokenizer, token,
                                                      model.config.target_vocab_size, n["token"])
    return subject(model, ids, OutputToken(index, tid), **options)


def _refuse_options(task: str, names: Mapping[str, str], **given) -> None:
    """One line naming an option that does not apply to a model of ``task``."""
    applies = {"target": ("classification", "language_model", "translation"),
               "token": ("language_model", "translation"), "target_text": ("translation",),
               "reference": ("encoder",)}
    kinds = {"classification": "a classifier", "language_model": "a language model",
             "translation": "a translation model", "encoder": "an encoder"}
    for name, value in given.items():
        if value not in (None, "") and task not in applies[name]:
            where = " or ".join(kinds[t] for t in applies[name])
            what = _WHAT[task].replace("--reference", names["reference"])
            raise ValueError(f"{names[name]} is for {where}; this model is {kinds[task]}, "
                             f"whose target is {what}")


@torch.no_grad()
def _embedding(model: nn.Module, tokenizer, text: str, max_tokens: int) -> torch.Tensor:
    """The mean-pooled output of an encoder on ``text`` ``(E,)``: a Similarity's reference."""
    from qkv.views.explore import model_inputs

    ids = model_inputs(model, task="encoder", source_tokenizer=tokenizer, text=text,
                       max_tokens=max_tokens)["text"]
    device = next(model.parameters()).device
    with eval_mode(model):
        hidden = model(torch.tensor([ids], device=device))[0]             # (T, E)
    return hidden.float().mean(0).cpu()


def attention_heads(model: nn.Module) -> dict[str, int]:
    """``{attention module name: its number of heads}``, in the model's order."""
    from qkv.attention.multi_head import MultiHeadAttention

    return {name: int(module.num_heads) for name, module in model.named_modules()
            if isinstance(module, MultiHeadAttention)}


def parse_heads(model: nn.Module, spec: str | None) -> dict[str, list[int]]:
    """Heads named in words → ``{attention module name: [head, …]}`` for :func:`ablate`.

    ``spec`` is a comma-separated list of ``NAME:HEAD`` (``encoder.layers.0.self_attention:1``)
    or ``LAYER.HEAD`` (``0.1``), the latter where the layer has one attention module (not a
    translation's decoder, which has a self- and a cross-attention).

    Example:
        >>> import qkv
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=10, d_model=16,
        ...     num_heads=2, num_layers=2, d_ff=32))
        >>> parse_heads(model, "1.0, 0.1,layers.1.self_attention:1")
        {'layers.1.self_attention': [0, 1], 'layers.0.self_attention': [1]}
    """
    from qkv.trace.selection import layer_of

    heads = attention_heads(model)
    chosen: dict[str, list[int]] = {}
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        if ":" in item:
            name, _, head_text = item.rpartition(":")
            if name not in heads:
                raise ValueError(f"ablate: no attention module is named {name!r}; the model's "
                                 f"are {', '.join(heads)}")
        else:
            layer_text, dot, head_text = item.partition(".")
            layer = _int(layer_text, f"ablate: a head is LAYER.HEAD or NAME:HEAD, got {item!r}"
                         ) if dot else None
            if layer is None:
                raise ValueError(f"ablate: a head is LAYER.HEAD (e.g. 0.1) or NAME:HEAD, "
                                 f"got {item!r}")
            names = [name for name in heads if layer_of(name) == layer]
            if not names:
                layers = sorted({layer_of(name) for name in heads} - {None})
                raise ValueError(f"ablate: layer {layer} is out of range: the model's layers "
                                 f"are {layers[0]}…{layers[-1]}")
            if len(names) > 1:
                raise ValueError(f"ablate: layer {layer} has {len(names)} attention modules "
                                 f"({', '.join(names)}): name one as NAME:HEAD")
            name = names[0]
        head = _int(head_text, f"ablate: the head of {item!r} must be an int")
        if not 0 <= head < heads[name]:
            raise ValueError(f"ablate: head {head} is out of range for {name} "
                             f"({heads[name]} heads: 0…{heads[name] - 1})")
        if head not in chosen.setdefault(name, []):
            chosen[name].append(head)
    return chosen


def json_ready(value):
    """``value`` with every NaN or ±inf float replaced by ``None`` (JSON has neither), tensors
    as lists, tuples as lists: what ``qkv explain --json`` prints and the explorer sends."""
    import math

    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().tolist()
    elif type(value).__module__ == "numpy":                 # numpy scalars and arrays
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return value


def ablation(model: nn.Module, heads: dict[str, list[int]]):
    """A context manager: :func:`qkv.explain.ablate` of ``heads`` (zeroed), or nothing when
    ``heads`` is empty."""
    import contextlib

    if not heads:
        return contextlib.nullcontext()
    import qkv.explain as explain

    ablate = getattr(explain, "ablate", None)
    if ablate is None:
        from qkv.explain.interventions import ablate
    return ablate(model, heads=heads)
