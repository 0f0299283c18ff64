"""``qkv.explain``: which input made the model decide, and how far to trust the answer.

A :func:`subject` is a model, its input and one *target* number (a class, a next token, an output
token of a translation, a similarity); every attribution method takes one and returns an
:class:`Attribution`, one score per input token. Methods are registered by name
(:data:`METHODS`, :func:`attribute`). See :mod:`qkv.explain.targets`, :mod:`qkv.explain.subject`.
"""

from qkv.explain.analysis import ANALYSES, Analysis, analyse, register_analysis
from qkv.explain.attribution import METHODS, Attribution, attribute, method_names, register
from qkv.explain.capture import AttentionStep, Capture, capture
from qkv.explain.subject import SCORES, Subject, subject
from qkv.explain.targets import Label, NextToken, OutputToken, Similarity, Target

__all__ = ["ANALYSES", "Analysis", "analyse", "register_analysis", "AttentionStep", "Attribution", "Capture", "capture", "METHODS", "attribute",
           "method_names", "register", "SCORES", "Subject", "subject", "Label", "NextToken",
           "OutputToken", "Similarity", "Target"]

# The methods and analyses register themselves on import (one line each, below).
from qkv.explain import raw_attention, rollout, flow, norm, alti  # noqa: E402,F401,I001  attention-based
from qkv.explain import gradients, grad_attention  # noqa: E402,F401,I001  grad-input, ig, grad-attention
from qkv.explain.faithfulness import (FaithfulnessResult, FaithfulnessTable,  # noqa: E402,I001
                                      faithfulness, faithfulness_table)
__all__ += ["faithfulness", "faithfulness_table", "FaithfulnessResult", "FaithfulnessTable"]
from qkv.explain import lens, memories  # noqa: E402,F401,I001  logit-lens, memories (analyses)
from qkv.explain.lens import logit_lens, residual_stream  # noqa: E402,I001
from qkv.explain.contexts import top_activating_contexts  # noqa: E402,I001
from qkv.explain.contributions import neuron_contributions  # noqa: E402,I001
from qkv.explain.values import value_vocabulary  # noqa: E402,I001
__all__ += ["logit_lens", "residual_stream", "neuron_contributions", "top_activating_contexts",
            "value_vocabulary"]
# interventions and uncertainty: the "ablate", "patch" and "uncertainty" analyses
from qkv.explain.interventions import Site, ablate, head_ablation, mean_activations  # noqa: E402,I001
from qkv.explain.patching import (Corruption, PatchResult, PatchingSweep, corrupt,  # noqa: E402,I001
                                  logit_difference, patch, patched, patching_sweep,
                                  target_probability)
from qkv.explain.uncertainty import (Calibration, MCDropout, calibration,  # noqa: E402,I001
                                     classifier_probabilities, dropout_mode, mc_dropout,
                                     predictive_entropy, save_reliability_diagram)
__all__ += ["Site", "ablate", "head_ablation", "mean_activations", "Corruption", "PatchResult",
            "PatchingSweep", "corrupt", "logit_difference", "patch", "patched", "patching_sweep",
            "target_probability", "Calibration", "MCDropout", "calibration",
            "classifier_probabilities", "dropout_mode", "mc_dropout", "predictive_entropy",
            "save_reliability_diagram"]
from qkv.explain.show import ExplanationView, show  # noqa: E402,I001  notebook views of results
__all__ += ["ExplanationView", "show"]
