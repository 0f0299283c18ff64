"""The logit lens: what the model would predict if it stopped after layer ``l``.

nostalgebraist, 2020, "interpreting GPT: the logit lens" (LessWrong). The residual stream after
each layer is read out the way the model reads its last one — through the final norm and the
output layer — which gives one next-token distribution per layer and position. Row 0 reads the
embeddings' output (the input of ``layers[0]``), row ``l + 1`` the output of ``layers[l]``
(named ``"layer l"``, 0-based like the modules), so a model of ``L`` layers has ``L + 1``
readings and the last one *is* the model's own output.

The readout, per family (:func:`read_out`):

* :class:`~qkv.LanguageModel` (GPT-2 too): the final norm, then the output layer →
  ``(L + 1, T, V)``.
* :class:`~qkv.Transformer`: the *decoder's* residual stream over the target prefix, its final
  norm, then the output layer (Marian's with its logits bias) → ``(L + 1, T, V)``.
* :class:`~qkv.SequenceClassifier`: the encoder's final norm, the pooling (``[CLS]`` or the mean),
  BERT's pooler if present and the head, per layer → label logits ``(L + 1, C)``.
* :class:`~qkv.EncoderModel` (MiniLM): there is no output layer, so the stream is projected onto
  the (input) token embedding matrix, a masked-LM-style lens ``(L + 1, T, V)``. This is an
  **approximation**: BERT's MLM head (dense + GELU + LayerNorm before the tied decoder, and its
  bias) is not part of a sentence-embedding checkpoint and is not loaded, so the scores are
  similarities to the token embeddings, not a trained masked-LM distribution.

Norm placement. *Pre-norm* models (``norm_first``, GPT-2) never normalise their residual stream
inside the layers and end with one final LayerNorm; the lens applies that same norm to every
layer's stream (as nostalgebraist did with GPT-2's ``ln_f``). *Post-norm* models (the paper's,
BERT/MiniLM, Marian) normalise each layer's output inside the layer, so the stream after a layer
is already normed and there is no final norm: the readout is applied as it is. Layer 0 of a
post-norm model without an embedding norm is the raw (scaled) token embedding plus positions,
read as it is.

Shape letters: ``L`` layers, ``T`` positions of the lens' side, ``E`` model width, ``V``
vocabulary, ``C`` labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from qkv._checks import shape_str
from qkv.explain.analysis import register_analysis
from qkv.explain.subject import Subject, eval_mode
from qkv.explain.targets import Label, Similarity
from qkv.models import EncoderModel, LanguageModel, SequenceClassifier, Transformer
from qkv.views.lens import lens_html, save_lens_png

__all__ = ["LensStack", "lens_stack", "residual_stream", "read_out", "logit_lens",
           "logit_lens_report", "layer_names", "token_namer", "subject_tokenizer"]

OUTPUTS = ("logit", "probability", "log_probability")


@dataclass(frozen=True)
class LensStack:
    """The layers a lens reads and what turns their residual stream into the model's output.

    Attributes:
        name: the layers' dotted name: ``"layers"``, ``"decoder.layers"`` or
            ``"encoder.layers"``.
        layers: the ``L`` layers, in order.
        final_norm: the LayerNorm after the last layer (pre-norm models), else ``None``.
        side: the subject's side the stream runs over (``"text"`` or ``"target"``).
        readout: ``"output layer"``, ``"classifier head"`` or ``"token embedding"``.
    """

    name: str
    layers: nn.ModuleList
    final_norm: nn.LayerNorm | None
    side: str
    readout: str

    @property
    def pre_norm(self) -> bool:
        return self.final_norm is not None


def lens_stack(model: nn.Module) -> LensStack:
    """The stack the lens reads in ``model`` (the decoder of a translation).

    Raises:
        TypeError: a model that is not one of qkv's four kinds.
    """
    if isinstance(model, LanguageModel):
        stack = LensStack("layers", model.layers, model.final_norm, "text", "output layer")
    elif isinstance(model, Transformer):
        stack = LensStack("decoder.layers", model.decoder.layers, model.decoder.norm, "target",
                          "output layer")
    elif isinstance(model, SequenceClassifier):
        stack = LensStack("encoder.layers", model.encoder.layers, model.encoder.final_norm,
                          "text", "classifier head")
    elif isinstance(model, EncoderModel):
        stack = LensStack("layers", model.layers, model.final_norm, "text", "token embedding")
    else:
        raise TypeError(f"model must be a qkv LanguageModel, Transformer, SequenceClassifier or "
                        f"EncoderModel, got {type(model).__name__}")
    if len(stack.layers) == 0:
        raise ValueError("the model has no layers to read")
    return stack


def residual_stream(model: nn.Module, ids: Tensor | Sequence[int], *,
                    source: Tensor | Sequence[int] | None = None) -> Tensor:
    """The residual stream of one sequence before the first layer and after every layer.

    Captured with forward hooks on the lens stack's layers (:func:`lens_stack`): a pre-hook on
    layer 0 for its input (the embeddings' output), a hook on each layer for its output. The
    stream after the last layer is *before* the final norm of a pre-norm model.

    Args:
        model: a qkv model (see :func:`lens_stack`).
        ids: the sequence ``(T,)`` (for a translation: the target prefix, ``<bos>`` first).
        source: a translation's source ids ``(S,)``; required for a
            :class:`~qkv.Transformer`, refused otherwise.

    Shape:
        returns ``(L + 1, T, E)``

    Example:
        >>> import torch, qkv
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=20, d_model=16,
        ...     num_heads=2, num_layers=3, d_ff=32))
        >>> residual_stream(model, [1, 5, 6]).shape
        torch.Size([4, 3, 16])
    """
    stack = lens_stack(model)
    ids, source = _inputs(model, ids, source)
    states: list[Tensor] = []
    handles = [stack.layers[0].register_forward_pre_hook(
        lambda module, args: states.append(args[0].detach()))]
    handles += [layer.register_forward_hook(
        lambda module, args, output: states.append(output.detach())) for layer in stack.layers]
    try:
        with eval_mode(model), torch.no_grad():
            _forward(model, ids, source)
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack([state[0] for state in states])                  # (L + 1, T, E)


def read_out(model: nn.Module, hidden: Tensor, *, ids: Tensor | None = None) -> Tensor:
    """Read residual-stream states out the way ``model`` reads its last one (module docstring).

    Args:
        model: a qkv model.
        hidden: states of the lens stack, any leading dims.
        ids: the sequence ``(T,)`` the states belong to; a classifier with a ``pad_id`` needs it
            to leave padding out of its pooling.

    Shape:
        ``hidden (..., T, E)`` → ``(..., T, V)``; for a classifier ``(..., C)``
    """
    stack = lens_stack(model)
    E = _width(model)
    if hidden.dim() < 2 or hidden.shape[-1] != E:
        raise ValueError(f"hidden must have shape (..., T, E) with E = d_model = {E}, got "
                         f"{shape_str(hidden.shape)}")
    with torch.no_grad():
        normed = hidden if stack.final_norm is None else stack.final_norm(hidden)   # (..., T, E)
        if isinstance(model, (LanguageModel, Transformer)):
            return model.output_layer(normed)                           # (..., T, V)
        if isinstance(model, EncoderModel):
            return normed @ model.embedding.token.weight.T              # (..., T, V)
        lead, T = normed.shape[:-2], normed.shape[-2]
        flat = normed.reshape(-1, T, E)                                 # (B', T, E)
        key_mask = None
        if model.config.pad_id is not None and ids is not None:
            key_mask = (ids.to(flat.device) != model.config.pad_id).expand(flat.shape[0], T)
        pooled = model.pool(flat, key_mask)                             # (B', E)
        if model.pooler is not None:
            pooled = torch.tanh(model.pooler(pooled))                   # (B', E)
        return model.classifier(pooled).reshape(*lead, -1)              # (..., C)


def logit_lens(model: nn.Module, ids: Tensor | Sequence[int], *,
               source: Tensor | Sequence[int] | None = None, output: str = "logit") -> Tensor:
    """The logit lens (nostalgebraist, 2020, "interpreting GPT: the logit lens"): the model's
    output read from the residual stream before the first layer and after every layer.

    Args:
        model: a LanguageModel, a Transformer (its decoder), a SequenceClassifier or an
            EncoderModel (projection onto the token embeddings — an approximation, see the
            module docstring).
        ids: the sequence ``(T,)`` (a translation's target prefix).
        source: a translation's source ``(S,)``.
        output: ``"logit"``, ``"probability"`` or ``"log_probability"`` (softmax over the
            vocabulary or the labels).

    Shape:
        returns ``(L + 1, T, V)``; for a classifier ``(L + 1, C)``. Row 0 reads the embeddings,
        row ``l + 1`` the output of ``layers[l]``; the last row equals the model's own output.

    Example:
        >>> import torch, qkv
        >>> model = qkv.LanguageModel(qkv.LanguageModelConfig(vocab_size=20, d_model=16,
        ...     num_heads=2, num_layers=2, d_ff=32, norm_first=True)).eval()
        >>> lens = logit_lens(model, [1, 5, 6])
        >>> lens.shape
        torch.Size([3, 3, 20])
        >>> torch.allclose(lens[-1], model(torch.tensor([[1, 5, 6]]))[0], atol=1e-5)
        True
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    ids_tensor, _ = _inputs(model, ids, source)
    hidden = residual_stream(model, ids, source=source)                 # (L + 1, T, E)
    with eval_mode(model):
        logits = read_out(model, hidden, ids=ids_tensor)                # (L + 1, T, V) | (L + 1, C)
    if output == "logit":
        return logits
    log_probabilities = torch.log_softmax(logits.float(), dim=-1)
    return log_probabilities if output == "log_probability" else log_probabilities.exp()


def layer_names(num_layers: int) -> list[str]:
    """The lens' rows: ``["embeddings", "layer 0", …, "layer L-1"]`` (row ``l + 1`` is the
    output of ``layers[l]``)."""
    return ["embeddings"] + [f"layer {index}" for index in range(num_layers)]


def token_namer(model: nn.Module, tokenizer=None):
    """A function ``ids → display strings`` for the lens' outputs: the labels of a classifier,
    the tokenizer's tokens, or ``"#id"`` without a tokenizer."""
    if isinstance(model, SequenceClassifier):
        labels = list(model.labels)
        return lambda ids: [labels[int(i)] for i in ids]
    if tokenizer is not None:
        return lambda ids: tokenizer.tokens([int(i) for i in ids])
    return lambda ids: [f"#{int(i)}" for i in ids]


# -- the registered analysis -------------------------------------------------------------------

def subject_tokenizer(subject: Subject, side: str):
    """The tokenizer :func:`~qkv.explain.subject` was given for ``side``, or ``None``."""
    return (getattr(subject, "tokenizers", None) or {}).get(side)


def logit_lens_report(subject: Subject, *, k: int = 5, tokenizer=None) -> dict[str, Any]:
    """The logit lens of a subject as a JSON-able report (what ``"logit-lens"`` runs).

    Args:
        subject: a subject of any family; the lens reads the side its target is predicted on
            (the text, or a translation's target prefix).
        k: tokens (or labels) listed per cell.
        tokenizer: names the predicted tokens (a translation: the *target* side's tokenizer);
            default the subject's (:attr:`Subject.tokenizers`); without any they are shown as
            ``"#id"``.

    Returns:
        ``{"kind": "logit-lens", "target", "readout", "pre_norm", "approximation" (str or
        None), "side", "layers" (L + 1 names), "positions" (P column names: the input tokens;
        one ``"pooled"`` column for a classifier), "top" (L + 1 × P × k of ``{"id", "token",
        "probability"}``), "final" (P × ``{"id", "token"}``: the last layer's prediction),
        "final_probability" (L + 1 × P: that prediction's probability at each layer),
        "target" …, "target_token" (``{"id", "token", "position", "probability" (L + 1),
        "rank" (L + 1)}`` or None for a similarity), "labels" and "label_probabilities"
        (L + 1 × C, classifier only), "input_probability" (L + 1 × T, encoder only: the
        probability of each position's own input token)}``.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}")
    model = subject.model
    stack = lens_stack(model)
    side = stack.side
    ids = subject.ids[side]
    source = subject.ids.get("source")
    probabilities = logit_lens(model, ids, source=source, output="probability").cpu()
    name = token_namer(model, tokenizer or subject_tokenizer(subject, side))
    classifier = isinstance(model, SequenceClassifier)
    table = probabilities[:, None, :] if classifier else probabilities  # (L + 1, P, V)
    L1, P, V = table.shape
    k = min(k, V)
    top_p, top_ids = table.topk(k, dim=-1)                              # (L + 1, P, k)
    names = name(top_ids.flatten().tolist())
    top = [[[{"id": int(top_ids[l, p, j]), "token": names[(l * P + p) * k + j],
              "probability": float(top_p[l, p, j])} for j in range(k)]
            for p in range(P)] for l in range(L1)]
    final_ids = top_ids[-1, :, 0]                                       # (P,)
    final_probability = table.gather(-1, final_ids[None, :, None].expand(L1, P, 1))[..., 0]
    if classifier:
        positions = ["pooled"]
    elif subject.tokens is not None:
        positions = list(subject.tokens[side])
    else:
        positions = [str(i) for i in ids.tolist()]
    report: dict[str, Any] = {
        "kind": "logit-lens",
        "target": subject.target_name,
        "readout": stack.readout,
        "pre_norm": stack.pre_norm,
        "approximation": (
            "an encoder has no output layer: its stream is projected onto the token embedding "
            "matrix (a masked-LM-style lens without BERT's MLM head, which is not loaded)"
            if stack.readout == "token embedding" else None),
        "stack": stack.name,
        "side": side,
        "layers": layer_names(L1 - 1),
        "positions": positions,
        "top": top,
        "final": [{"id": int(i), "token": t}
                  for i, t in zip(final_ids.tolist(), name(final_ids.tolist()))],
        "final_probability": final_probability.tolist(),
        "target_token": _target_entry(subject, table, name),
    }
    if classifier:
        report["labels"] = list(model.labels)
        report["label_probabilities"] = probabilities.tolist()
    if isinstance(model, EncoderModel):
        own = ids.to(table.device)[None, :, None].expand(L1, P, 1)
        report["input_probability"] = table.gather(-1, own)[..., 0].tolist()
    return report


def _target_entry(subject: Subject, table: Tensor, name) -> dict[str, Any] | None:
    """The subject's target token (label) at its position, per layer: probability and rank."""
    target = subject.target
    if isinstance(target, Similarity):
        return None
    if isinstance(target, Label):
        index, position = target.label, 0
    else:                                                               # NextToken, OutputToken
        index, position = target.token, table.shape[1] - 1              # the last position
    column = table[:, position]                                         # (L + 1, V)
    probability = column[:, index]                                      # (L + 1,)
    rank = (column > probability[:, None]).sum(-1)                      # (L + 1,), 0 = top
    return {"id": int(index), "token": name([index])[0], "position": position,
            "probability": probability.tolist(), "rank": rank.tolist()}


@register_analysis("logit-lens", html=lens_html, png=save_lens_png)
def _run_logit_lens(subject: Subject, *, k: int = 5, tokenizer=None) -> dict[str, Any]:
    """The logit lens (nostalgebraist, 2020, "interpreting GPT: the logit lens"): see
    :func:`logit_lens_report`."""
    return logit_lens_report(subject, k=k, tokenizer=tokenizer)


# -- helpers -----------------------------------------------------------------------------------

def _width(model: nn.Module) -> int:
    return model.config.d_model


def _sequence(name: str, value) -> Tensor:
    tensor = value if isinstance(value, Tensor) else torch.tensor(list(value), dtype=torch.long)
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token ids, got {tensor.dtype}")
    if tensor.dim() == 2 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.dim() != 1 or tensor.shape[0] == 0:
        raise ValueError(f"{name} must be one non-empty sequence (T,), got "
                         f"{shape_str(tensor.shape)}")
    return tensor.long()


def _inputs(model: nn.Module, ids, source) -> tuple[Tensor, Tensor | None]:
    lens_stack(model)                                                   # checks the kind
    ids = _sequence("ids", ids)
    if isinstance(model, Transformer):
        if source is None:
            raise ValueError("a translation's lens reads its decoder: give source= the source "
                             "ids (S,) besides the target prefix ids (T,)")
        return ids, _sequence("source", source)
    if source is not None:
        raise ValueError(f"source= is for a translation (Transformer); a "
                         f"{type(model).__name__} reads one sequence")
    return ids, None


def _forward(model: nn.Module, ids: Tensor, source: Tensor | None) -> Tensor:
    device = next(model.parameters()).device
    if source is not None:
        return model(source[None].to(device), ids[None].to(device))
    return model(ids[None].to(device))
