"""The shipped organisms, apart from the method: builders, architectures and word-level tokenizers.

Example:
    >>> from moft.models.tiny import build_tokenizer
    >>> tok = build_tokenizer()
    >>> tok.convert_ids_to_tokens(tok("a red disk").input_ids)
    ['<|startoftext|>', 'a', 'red', 'disk', '<|endoftext|>']
"""

from .builders import (TINY_FLOW_SCHEDULER, TINY_SCHEDULER, TINY_TEXT, TINY_UMT5, TINY_UNET, TINY_VAE, TINY_WAN_TRANSFORMER,
                       TINY_WAN_VAE, build_tiny_animatediff, build_tiny_cogvideox_i2v, build_tiny_sparsectrl, build_tiny_svd,
                       build_tiny_wan, build_tiny_wan21_i2v, build_tiny_wan_i2v)
from .tokenizer import WORDS, build_t5_tokenizer, build_tokenizer, unknown_words

__all__ = ["TINY_FLOW_SCHEDULER", "TINY_SCHEDULER", "TINY_TEXT", "TINY_UMT5", "TINY_UNET", "TINY_VAE",
           "TINY_WAN_TRANSFORMER", "TINY_WAN_VAE", "WORDS", "build_t5_tokenizer", "build_tiny_animatediff",
           "build_tiny_cogvideox_i2v", "build_tiny_sparsectrl", "build_tiny_svd", "build_tiny_wan", "build_tiny_wan21_i2v",
           "build_tiny_wan_i2v", "build_tokenizer", "unknown_words"]
