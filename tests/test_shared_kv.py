"""Shared K/V (paper Supp. §8.2): which keys/values a guided pass sees, and a model left as it was.

The independent reason throughout: sharing a branch's own hidden states as keys/values is plain
self-attention, so wherever the source *is* the guided branch the output must equal the plain forward,
and wherever it is another branch it must differ.
"""

from __future__ import annotations

import pytest
import torch

from conftest import FRAMES, SIZE, text_cond
from moft.models.adapters import call_denoiser
from moft.models.latents import encode_prompt
from moft.method.shared_kv import SharedKV

pytestmark = pytest.mark.usefixtures("single_thread")


def _latents(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, FRAMES, 4, SIZE // 2, SIZE // 2, generator=g)  # (B, F, C, h, w)


def _forward(unet, z, t, cond):
    with torch.no_grad():
        return call_denoiser(unet, z, t, cond)


def _processors(unet) -> dict:
    return {n: m.processor for n, m in unet.named_modules() if hasattr(m, "processor")}


def test_shared_kv_takes_the_conditional_half_of_a_cfg_record(animatediff):
    """Record a CFG batch ``[uncond, cond]`` of the same latents, then share into a cond-only pass of
    them: the keys/values are that pass's own hidden states, so the output is the plain forward's.
    With the unconditional half (other text, other hidden states) it would differ."""
    unet, z, t = animatediff.unet, _latents(0), 500
    cond = text_cond(animatediff, "a red disk moving right")
    uncond = {"encoder_hidden_states": encode_prompt(animatediff, "")}
    cfg = {"encoder_hidden_states": torch.cat([uncond["encoder_hidden_states"], cond["encoder_hidden_states"]])}
    plain = _forward(unet, z, t, cond)
    with SharedKV(unet) as kv:
        assert kv.names, "no spatial self-attention module matched"
        kv.mode = "record"
        _forward(unet, torch.cat([z, z]), t, cfg)
        kv.mode = "share"
        shared = _forward(unet, z, t, cond)
    assert torch.allclose(shared, plain, atol=1e-5)
    # the test has teeth: the unconditional branch's hidden states are not the conditional one's
    with SharedKV(unet) as kv:
        kv.mode = "record"
        _forward(unet, z, t, uncond)
        kv.mode = "share"
        other = _forward(unet, z, t, cond)
    assert (other - plain).abs().max() > 1e-3


def test_a_cfg_guided_pass_shares_the_whole_recorded_batch(animatediff):
    """A guided pass on the whole CFG batch takes the whole record: its own K/V again."""
    unet, z, t = animatediff.unet, _latents(2), 300
    cond, uncond = text_cond(animatediff), {"encoder_hidden_states": encode_prompt(animatediff, "")}
    cfg = {"encoder_hidden_states": torch.cat([uncond["encoder_hidden_states"], cond["encoder_hidden_states"]])}
    plain = _forward(unet, torch.cat([z, z]), t, cfg)
    with SharedKV(unet) as kv:
        kv.mode = "record"
        _forward(unet, torch.cat([z, z]), t, cfg)
        kv.mode = "share"
        shared = _forward(unet, torch.cat([z, z]), t, cfg)
    assert torch.allclose(shared, plain, atol=1e-5)


def test_shared_kv_takes_keys_from_the_source_not_the_guided_latents(animatediff):
    """Sharing a different source's K/V changes the output; sharing the same source twice does not."""
    unet, z_src, z = animatediff.unet, _latents(3), _latents(4)
    cond = text_cond(animatediff)
    plain = _forward(unet, z, 400, cond)
    with SharedKV(unet) as kv:
        kv.mode = "record"
        recorded = _forward(unet, z_src, 400, cond)
        kv.mode = "share"
        a = _forward(unet, z, 400, cond)
        b = _forward(unet, z, 400, cond)
    assert torch.equal(a, b)
    assert (a - plain).abs().max() > 1e-3
    assert torch.allclose(recorded, _forward(unet, z_src, 400, cond), atol=1e-6)  # recording changes nothing


def test_off_mode_is_plain_attention_even_with_a_record(animatediff):
    """``"off"`` passes through, whatever the store holds (the final epsilon is never shared)."""
    unet, z_src, z = animatediff.unet, _latents(5), _latents(6)
    cond = text_cond(animatediff)
    plain = _forward(unet, z, 600, cond)
    with SharedKV(unet) as kv:
        kv.mode = "record"
        _forward(unet, z_src, 600, cond)
        kv.mode = "off"
        off = _forward(unet, z, 600, cond)
    assert torch.allclose(off, plain, atol=1e-6)


def test_only_the_up_blocks_spatial_self_attention_is_wrapped(animatediff):
    unet = animatediff.unet
    before = _processors(unet)
    with SharedKV(unet) as kv:
        during = _processors(unet)
        changed = sorted(n for n in before if during[n] is not before[n])
        assert changed == sorted(kv.names) and changed
        assert all(n.startswith("up_blocks.") and n.endswith(".attn1") for n in changed)
        assert all(during[n].base is before[n] for n in changed)


def test_every_processor_and_the_store_are_restored_on_exit_and_on_error(animatediff):
    unet, cond = animatediff.unet, text_cond(animatediff)
    before = _processors(unet)
    kv = SharedKV(unet)
    with pytest.raises(RuntimeError, match="boom"):
        with kv:
            kv.mode = "record"
            _forward(unet, _latents(7), 500, cond)
            assert kv.store
            raise RuntimeError("boom")
    after = _processors(unet)
    assert all(after[n] is before[n] for n in before)
    assert kv.store == {}


def test_a_failure_while_installing_restores_the_processors_already_replaced(animatediff, monkeypatch):
    unet = animatediff.unet
    before = _processors(unet)
    kv = SharedKV(unet)
    assert len(kv.names) >= 2
    last = unet.get_submodule(kv.names[-1])
    real = type(last).set_processor

    def refuse(self, processor):
        if self is last and type(processor).__name__ == "_SharedKVProcessor":
            raise RuntimeError("cannot install")
        return real(self, processor)

    monkeypatch.setattr(type(last), "set_processor", refuse)
    with pytest.raises(RuntimeError, match="cannot install"):
        with kv:
            pass
    monkeypatch.undo()
    after = _processors(unet)
    assert all(after[n] is before[n] for n in before)
