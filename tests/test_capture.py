"""Capturing block outputs: canonical shapes, gradients, early stop, CFG halves, cleanup on errors."""

from __future__ import annotations

import pytest
import torch
from einops import rearrange

from moft.models.adapters import call_denoiser
from moft.method.capture import CaptureError, capture, to_canonical

from conftest import FRAMES, svd_cond, text_cond

pytestmark = pytest.mark.usefixtures("single_thread")

MOTION = "up_blocks.1.motion_modules.0"
TEMPORAL_ATTN = "up_blocks.1.motion_modules.0.transformer_blocks.0.attn1"


def _latents(batch: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, FRAMES, 4, 16, 16, generator=torch.Generator().manual_seed(seed))


def _hooks_left(net) -> list[str]:
    return [name for name, m in net.named_modules() if m._forward_hooks or m._forward_pre_hooks]


@pytest.fixture(scope="module")
def ad_cond(animatediff):
    return text_cond(animatediff)


@pytest.fixture(scope="module")
def reference_output(animatediff, ad_cond):
    with torch.no_grad():
        return call_denoiser(animatediff.unet, _latents(), 500, ad_cond)


@pytest.mark.parametrize("name, channels", [("animatediff", 64), ("modelscope", 32), ("svd", 32)])
def test_default_site_is_canonical_per_architecture(request, name, channels):
    if name == "svd":
        net, cond = request.getfixturevalue("svd_unet"), svd_cond()
    else:
        pipe = request.getfixturevalue(name)
        net, cond = pipe.unet, text_cond(pipe)
    with torch.no_grad(), capture(net) as cap:
        call_denoiser(net, _latents(), 500, cond)
    assert list(cap.features) == ["up_blocks.1"]
    assert cap.output.shape == (1, FRAMES, channels, 16, 16)


def test_default_site_equals_the_raw_block_output_rearranged(animatediff, ad_cond):
    raw = {}
    block = animatediff.unet.up_blocks[1]
    handle = block.register_forward_hook(lambda m, a, o: raw.setdefault("x", o))
    try:
        with torch.no_grad(), capture(animatediff.unet) as cap:
            call_denoiser(animatediff.unet, _latents(), 500, ad_cond)
    finally:
        handle.remove()
    assert torch.equal(cap.output, rearrange(raw["x"], "(b f) c h w -> b f c h w", b=1))


def test_multiple_sites_including_temporal_attention_are_canonical(animatediff, ad_cond):
    raw = {}
    attn = dict(animatediff.unet.named_modules())[TEMPORAL_ATTN]
    handle = attn.register_forward_hook(lambda m, a, o: raw.setdefault("x", o))
    try:
        with torch.no_grad(), capture(animatediff.unet, ["up_blocks.1", MOTION, TEMPORAL_ATTN]) as cap:
            call_denoiser(animatediff.unet, _latents(), 500, ad_cond)
    finally:
        handle.remove()
    assert raw["x"].shape == (1 * 8 * 8, FRAMES, 64)  # (B*H*W, F, C) before capture reads it
    assert cap.features["up_blocks.1"].shape == (1, FRAMES, 64, 16, 16)
    assert cap.features[MOTION].shape == (1, FRAMES, 64, 8, 8)
    assert cap.features[TEMPORAL_ATTN].shape == (1, FRAMES, 64, 8, 8)
    assert torch.equal(cap.features[TEMPORAL_ATTN], rearrange(raw["x"], "(b h w) f c -> b f c h w", b=1, h=8))


def test_detach_true_stores_tensors_without_grad(animatediff, ad_cond):
    z = _latents().requires_grad_(True)
    with capture(animatediff.unet, detach=True, stop=True) as cap:
        call_denoiser(animatediff.unet, z, 500, ad_cond)
    assert not cap.output.requires_grad
    assert cap.output.grad_fn is None


def test_detach_false_lets_gradients_reach_the_latents(animatediff, ad_cond):
    z = _latents().requires_grad_(True)
    with capture(animatediff.unet, detach=False, stop=True) as cap:
        call_denoiser(animatediff.unet, z, 500, ad_cond)
    (grad,) = torch.autograd.grad(cap.output.sum(), z)
    assert grad.shape == z.shape
    assert grad.abs().sum() > 0


def test_stop_gives_the_same_features_as_a_full_pass(animatediff, ad_cond):
    with torch.no_grad(), capture(animatediff.unet, stop=False) as full:
        call_denoiser(animatediff.unet, _latents(), 500, ad_cond)
    with torch.no_grad(), capture(animatediff.unet, stop=True) as early:
        call_denoiser(animatediff.unet, _latents(), 500, ad_cond)
    assert torch.equal(early.output, full.output)


def test_stop_raises_nothing_outside_the_with(animatediff, ad_cond):
    after = []
    with torch.no_grad(), capture(animatediff.unet, stop=True):
        call_denoiser(animatediff.unet, _latents(), 500, ad_cond)
        after.append("unreachable")  # the forward pass was cut, so this line never runs
    assert after == []


def test_stop_ends_the_forward_pass_after_the_last_site(animatediff, ad_cond):
    ran = []
    handle = animatediff.unet.conv_out.register_forward_hook(lambda m, a, o: ran.append(1))
    try:
        with torch.no_grad(), capture(animatediff.unet, stop=True):
            call_denoiser(animatediff.unet, _latents(), 500, ad_cond)
    finally:
        handle.remove()
    assert ran == []


def test_select_cond_equals_second_half_of_an_unselected_batch(animatediff, ad_cond):
    z = torch.cat([_latents(seed=1), _latents(seed=2)])
    cond = {k: torch.cat([v, v]) for k, v in ad_cond.items()}
    with torch.no_grad(), capture(animatediff.unet, stop=True) as whole:
        call_denoiser(animatediff.unet, z, 500, cond)
    with torch.no_grad(), capture(animatediff.unet, stop=True, select="cond") as half:
        call_denoiser(animatediff.unet, z, 500, cond)
    assert half.output.shape == (1, FRAMES, 64, 16, 16)
    assert torch.equal(half.output, whole.output[1:])


def test_select_uncond_equals_first_half_of_an_unselected_batch(animatediff, ad_cond):
    z = torch.cat([_latents(seed=1), _latents(seed=2)])
    cond = {k: torch.cat([v, v]) for k, v in ad_cond.items()}
    with torch.no_grad(), capture(animatediff.unet, stop=True) as whole:
        call_denoiser(animatediff.unet, z, 500, cond)
    with torch.no_grad(), capture(animatediff.unet, stop=True, select="uncond") as half:
        call_denoiser(animatediff.unet, z, 500, cond)
    assert torch.equal(half.output, whole.output[:1])


def test_exception_inside_with_leaves_no_hooks_and_same_output(animatediff, ad_cond, reference_output):
    with pytest.raises(RuntimeError, match="boom"):
        with torch.no_grad(), capture(animatediff.unet, ["up_blocks.1", MOTION, TEMPORAL_ATTN]):
            call_denoiser(animatediff.unet, _latents(), 500, ad_cond)
            raise RuntimeError("boom")
    assert _hooks_left(animatediff.unet) == []
    with torch.no_grad():
        after = call_denoiser(animatediff.unet, _latents(), 500, ad_cond)
    assert torch.equal(after, reference_output)


def test_exception_raised_by_a_hook_leaves_no_hooks_and_same_output(animatediff, ad_cond, reference_output):
    with pytest.raises(Exception) as info:
        with torch.no_grad(), capture(animatediff.unet, layout="b c"):  # cannot describe a 4-d output
            call_denoiser(animatediff.unet, _latents(), 500, ad_cond)
    assert not isinstance(info.value, AssertionError)
    assert _hooks_left(animatediff.unet) == []
    with torch.no_grad():
        after = call_denoiser(animatediff.unet, _latents(), 500, ad_cond)
    assert torch.equal(after, reference_output)


def test_bad_layout_raises_capture_error(animatediff, ad_cond):
    with pytest.raises(CaptureError):
        with torch.no_grad(), capture(animatediff.unet, layout="b c"):
            call_denoiser(animatediff.unet, _latents(), 500, ad_cond)


def test_no_hooks_remain_after_a_normal_exit(animatediff, ad_cond):
    with torch.no_grad(), capture(animatediff.unet, ["up_blocks.1", MOTION]):
        call_denoiser(animatediff.unet, _latents(), 500, ad_cond)
    assert _hooks_left(animatediff.unet) == []


def test_bad_site_name_raises_capture_error_naming_it(animatediff):
    with pytest.raises(CaptureError, match="up_blocks.9"):
        capture(animatediff.unet, "up_blocks.9")


def test_bad_site_name_registers_no_hooks(animatediff):
    with pytest.raises(CaptureError):
        capture(animatediff.unet, ["up_blocks.1", "no_such.module"])
    assert _hooks_left(animatediff.unet) == []


def test_bad_select_raises_capture_error(animatediff):
    with pytest.raises(CaptureError, match="select"):
        capture(animatediff.unet, select="both")


def test_output_before_the_pass_raises_capture_error(animatediff):
    cap = capture(animatediff.unet)
    with pytest.raises(CaptureError, match="did not run"):
        cap.output


# ---------------------------------------------------------------------------
# to_canonical on synthetic tensors
# ---------------------------------------------------------------------------

B, F, C, H, W = 2, 3, 5, 4, 6  # latents H x W = 4 x 6; every size distinct so mix-ups show


@pytest.fixture(scope="module")
def canonical():
    return torch.arange(B * F * C * H * W, dtype=torch.float32).reshape(B, F, C, H, W)


@pytest.mark.parametrize("layout", ["(b f) c h w", "b c f h w", "b f c h w", "(b f) (h w) c", "(b h w) f c"])
def test_to_canonical_with_explicit_layout_recovers_b_f_c_h_w(canonical, layout):
    x = rearrange(canonical, f"b f c h w -> {layout}")
    assert torch.equal(to_canonical(x, B, F, H, W, layout), canonical)


@pytest.mark.parametrize("layout", ["(b f) c h w", "b c f h w", "b f c h w", "(b f) (h w) c", "(b h w) f c"])
def test_to_canonical_infers_each_layout_from_the_shape(canonical, layout):
    x = rearrange(canonical, f"b f c h w -> {layout}")
    assert torch.equal(to_canonical(x, B, F, H, W), canonical)


def test_to_canonical_reads_a_token_grid_at_a_lower_resolution(canonical):
    """A block at half the latent resolution: (h w) tokens with the latents' aspect ratio."""
    small = canonical[..., ::2, ::2]  # (B, F, C, 2, 3)
    x = rearrange(small, "b f c h w -> (b f) (h w) c")
    assert torch.equal(to_canonical(x, B, F, H, W, "(b f) (h w) c"), small)


def test_to_canonical_rejects_tokens_that_form_no_grid():
    x = torch.zeros(B * F, 7, C)  # 7 tokens cannot be a 4:6 grid
    with pytest.raises(CaptureError, match="7 tokens"):
        to_canonical(x, B, F, H, W, "(b f) (h w) c")


def test_to_canonical_rejects_an_unreadable_shape():
    with pytest.raises(CaptureError, match="layout"):
        to_canonical(torch.zeros(7, 11), B, F, H, W)


def test_to_canonical_reads_a_one_row_token_grid():
    """A wide, coarse block: 1 x 4 tokens for 2 x 8 latents (the grid's aspect ratio is the latents')."""
    x = torch.arange(B * F * 4 * C, dtype=torch.float32).reshape(B * F, 4, C)  # (B*F, h*w, C)
    out = to_canonical(x, B, F, 2, 8, "(b f) (h w) c")
    assert out.shape == (B, F, C, 1, 4)
    assert torch.equal(out[1, 2, :, 0, 3], x[1 * F + 2, 3])


def test_to_canonical_keeps_a_5d_layout_whose_second_axis_is_frames():
    """``(B, F, C, H, W)`` with C != F is read as frames-first, ``(B, C, F, H, W)`` as channels-first."""
    x = torch.randn(B, F, C, H, W)
    assert torch.equal(to_canonical(x, B, F, H, W), x)
    assert torch.equal(to_canonical(x.transpose(1, 2), B, F, H, W), x)


def test_bad_site_name_suggests_at_most_five_siblings_under_its_parent(animatediff):
    with pytest.raises(CaptureError) as info:
        capture(animatediff.unet, "up_blocks.1.attentions.9")
    hint = str(info.value).split("(e.g. ", 1)[1].rstrip(")").split(", ")
    assert 1 <= len(hint) <= 5
    assert all(n.startswith("up_blocks.1.attentions") for n in hint)
    siblings = [n for n, _ in animatediff.unet.named_modules() if n.startswith("up_blocks.1.attentions")]
    assert hint == siblings[:5]


@pytest.mark.parametrize("output", [(), [], ["not a tensor"], ("text", torch.zeros(1)), object()])
def test_a_module_output_without_a_leading_tensor_is_a_capture_error(output):
    from moft.method.capture import _first_tensor

    with pytest.raises(CaptureError, match="cannot find a tensor"):
        _first_tensor(output)


def test_the_first_tensor_of_a_module_output():
    from types import SimpleNamespace

    from moft.method.capture import _first_tensor

    x = torch.zeros(2)
    assert _first_tensor(x) is x and _first_tensor((x, 1)) is x and _first_tensor([x]) is x
    assert _first_tensor(SimpleNamespace(sample=x)) is x
    assert _first_tensor(SimpleNamespace(last_hidden_state=x)) is x


def test_capture_sites_lists_the_default_block_outputs_and_temporal_layers(animatediff):
    from moft.method.capture import capture_sites

    sites = capture_sites(animatediff.unet)
    names = {n for n, _ in animatediff.unet.named_modules()}
    assert sites["default"] == ["up_blocks.1"]
    assert {"down_blocks.0", "up_blocks.1", "mid_block"} <= set(sites["blocks"]) <= names
    assert sites["temporal"] and all("motion_modules." in n for n in sites["temporal"])
    assert "up_blocks.1.motion_modules.0" in sites["temporal"]
