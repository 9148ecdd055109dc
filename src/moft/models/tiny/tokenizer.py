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


def unknown_words(tokenizer, text: str) -> list[str]:
    """Words of ``text`` that ``tokenizer`` reads as its unknown token, in order, without repeats.

    Example:
        >>> unknown_words(build_tokenizer(), "a red zebra moving sideways")
        ['zebra', 'sideways']

    Tokenizers without an unknown token (byte-level BPE, as CLIP's) or without offsets give ``[]``.
    """
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None or not text or not getattr(tokenizer, "is_fast", False):
        return []
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False, truncation=False)
    words: list[str] = []
    for token, (a, b) in zip(enc["input_ids"], enc["offset_mapping"]):
        if token == unk and b > a and text[a:b] not in words:
            words.append(text[a:b])
    return words
