"""A word tokenizer whose tokens are the whitespace-separated words, kept whole, for the view tests:
``<script>alert(1)</script>`` stays one token, so escaping can be checked end to end."""

from qkv.tokenizers import WordTokenizer
from qkv.tokenizers.base import SPECIAL_TOKENS

WORDS = ["I", "love", "my", "dog", "the", "cat", "<script>alert(1)</script>", "</script>", "我爱狗"]


class SpaceTokenizer(WordTokenizer):
    """Tokens are the text's whitespace-separated words."""

    kind = "space-test"

    @staticmethod
    def _split(text):
        return text.split()


def space_tokenizer() -> SpaceTokenizer:
    return SpaceTokenizer([*SPECIAL_TOKENS, *WORDS])
