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
