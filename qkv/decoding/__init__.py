"""Decoding with a trained model: greedy, beam search and sampling, all with the KV cache."""

from qkv.decoding.search import BeamSearch, Greedy, Sampling, generate, greedy, translate

__all__ = ["BeamSearch", "Greedy", "Sampling", "generate", "greedy", "translate"]
