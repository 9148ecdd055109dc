"""The local word-level CLIP-style tokenizer."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from moft.io.synthetic import COLORS, SHAPES
from moft.models.tiny.tokenizer import WORDS, build_tokenizer

LENGTH = 16


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(max_length=LENGTH)


def _ids(tok, text: str) -> list[int]:
    return tok(text, padding="max_length", max_length=LENGTH, truncation=True).input_ids


@pytest.mark.parametrize("text", ["", "red", "a red disk moving left", " ".join(["red"] * 40)])
def test_ids_have_a_fixed_length(tok, text):
    assert len(_ids(tok, text)) == LENGTH


def test_model_max_length_is_the_configured_length(tok):
    assert tok.model_max_length == LENGTH


def test_bos_comes_first(tok):
    assert _ids(tok, "a red disk")[0] == tok.bos_token_id


def test_eos_then_padding_follow_the_words(tok):
    ids = _ids(tok, "a red disk moving left")
    words = [tok.convert_tokens_to_ids(w) for w in "a red disk moving left".split()]
    assert ids[1:6] == words
    assert ids[6] == tok.eos_token_id
    assert all(i == tok.pad_token_id for i in ids[7:])


def test_padding_is_the_end_token_as_in_clip(tok):
    assert tok.pad_token_id == tok.eos_token_id


def test_truncated_ids_still_end_with_eos(tok):
    ids = _ids(tok, " ".join(["red"] * 40))
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id


def test_unknown_word_maps_to_unk(tok):
    ids = _ids(tok, "a zebra")
    assert ids[2] == tok.unk_token_id
    assert tok.unk_token_id not in (tok.bos_token_id, tok.eos_token_id)


def test_known_words_are_not_unk(tok):
    ids = _ids(tok, " ".join(sorted(COLORS)[:4] + list(SHAPES)))
    assert tok.unk_token_id not in ids


def test_every_vocabulary_word_has_its_own_id(tok):
    ids = [tok.convert_tokens_to_ids(w) for w in WORDS]
    assert len(set(ids)) == len(WORDS)
    assert tok.unk_token_id not in ids


def test_input_is_lower_cased(tok):
    assert _ids(tok, "A RED Disk") == _ids(tok, "a red disk")


def test_punctuation_is_split_from_words(tok):
    ids = _ids(tok, "a red disk, moving")
    assert ids[4] == tok.convert_tokens_to_ids(",")


def test_save_load_round_trip_gives_the_same_ids(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    loaded = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    for text in ["a red disk moving left", "a zebra", "A GREEN square, the whole scene moving up"]:
        assert _ids(loaded, text) == _ids(tok, text)
    assert (loaded.bos_token_id, loaded.eos_token_id, loaded.pad_token_id, loaded.unk_token_id) == (
        tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id)


def test_auto_tokenizer_loads_the_saved_tokenizer(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert _ids(loaded, "a red disk moving left") == _ids(tok, "a red disk moving left")
    assert loaded.model_max_length == LENGTH


def test_t5_tokenizer_follows_t5_conventions_and_the_wan_pipeline_accepts_it():
    """UMT5 expects <pad> = 0 and </s> = 1 after the words, no start token; WanPipeline keeps the
    caption's positions (attention mask) and zeros the rest."""
    import torch

    from moft.models.tiny import build_tiny_wan
    from moft.models.tiny.tokenizer import build_t5_tokenizer

    tok = build_t5_tokenizer()
    enc = tok("a red disk", padding="max_length", max_length=8, return_attention_mask=True)
    assert enc.input_ids[3:] == [tok.eos_token_id] + [tok.pad_token_id] * 4
    assert (tok.pad_token_id, tok.eos_token_id) == (0, 1)
    assert tok.unk_token_id not in enc.input_ids[:3]
    pipe = build_tiny_wan()
    emb, _ = pipe.encode_prompt("a red disk", do_classifier_free_guidance=False, max_sequence_length=12)
    assert emb.shape == (1, 12, 64)
    assert emb[0, :4].abs().sum(-1).min() > 0 and emb[0, 4:].abs().max() == 0  # 3 words + </s>, then zeros
    with torch.no_grad():
        out = pipe("a red disk", num_frames=8, height=32, width=32, num_inference_steps=2, output_type="np").frames
    assert out.shape == (1, 9, 32, 32, 3)  # temporal scale 1: WanPipeline rounds 8 frames up to 9
