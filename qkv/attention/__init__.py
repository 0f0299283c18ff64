"""The attention core: the scaled dot-product formula, masks and multi-head attention."""

from qkv.attention.functional import scaled_dot_product_attention
from qkv.attention.masks import causal_mask, combine_masks, length_mask, padding_mask
from qkv.attention.multi_head import MultiHeadAttention

__all__ = [
    "scaled_dot_product_attention",
    "MultiHeadAttention",
    "padding_mask",
    "length_mask",
    "causal_mask",
    "combine_masks",
]
