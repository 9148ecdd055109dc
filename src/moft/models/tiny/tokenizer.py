"""A word-level CLIP-style tokenizer written locally (no hub download).

Example:
    >>> from moft.models.tiny.tokenizer import build_tokenizer
    >>> tok = build_tokenizer()
    >>> ids = tok("a red disk moving left", padding="max_length", max_length=16).input_ids
    >>> len(ids), ids[0] == tok.bos_token_id
    (16, True)

Unknown words map to ``<|unk|>``; sequences are ``<|startoftext|> words <|endoftext|>`` padded with
``<|endoftext|>`` as CLIP does, so ``CLIPTextModel`` pools at the first end token.
"""

from __future__ import annotations

from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

from ...io.synthetic import COLORS, SHAPES
from ..latents import unknown_words  # noqa: F401  (re-exported: it serves any pipeline's tokenizer)

SPECIAL = ["<|startoftext|>", "<|endoftext|>", "<|unk|>"]
WORDS = sorted(
    set(COLORS)
    | set(SHAPES)
    | {"a", "an", "the", "and", "then", "moving", "standing", "still", "whole", "scene", "camera",
       "panning", "left", "right", "up", "down", "object", "objects", "two", "small", "big", ",", ".",
       "-", "cat", "cats", "photo", "of", "in", "on", "room", "close"}
)


def build_tokenizer(words: list[str] | None = None, max_length: int = 16) -> PreTrainedTokenizerFast:
    """Build the tokenizer for ``words`` (default: the synthetic-caption vocabulary).

    Args:
        words: vocabulary, lower case.
        max_length: ``model_max_length`` (the text encoder's position count).

    Returns:
        A ``PreTrainedTokenizerFast`` that saves and loads with ``save_pretrained``/``from_pretrained``.
    """
    vocab = {tok: i for i, tok in enumerate(SPECIAL + sorted(set(words or WORDS)))}
    core = Tokenizer(WordLevel(vocab, unk_token="<|unk|>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", vocab["<|startoftext|>"]), ("<|endoftext|>", vocab["<|endoftext|>"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|unk|>",
        pad_token="<|endoftext|>",
        model_max_length=max_length,
    )


def build_t5_tokenizer(words: list[str] | None = None, max_length: int = 512) -> PreTrainedTokenizerFast:
    """The same word-level vocabulary with T5 conventions, for UMT5 text encoders (``WanPipeline``).

    Example:
        >>> tok = build_t5_tokenizer()
        >>> enc = tok("a red disk", padding="max_length", max_length=6, return_attention_mask=True)
        >>> enc.input_ids[-3:], enc.attention_mask
        ([1, 0, 0], [1, 1, 1, 1, 0, 0])

    ``<pad>`` is id 0 and ``</s>`` id 1 (UMT5's ``pad_token_id``/``eos_token_id``); a sequence is
    ``words </s>`` with no start token, padded with ``<pad>``, as T5 tokenizers do.
    """
    special = ["<pad>", "</s>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(special + sorted(set(words or WORDS)))}
    core = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", vocab["</s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                                   model_max_length=max_length)
