"""Running a trained model: greedy, beam search and sampling, all with the KV cache; and
classifying texts."""

from qkv.decoding.classify import classify_texts
from qkv.decoding.search import BeamSearch, Greedy, Sampling, generate, greedy, translate

__all__ = ["BeamSearch", "Greedy", "Sampling", "generate", "greedy", "translate", "classify_texts"]
