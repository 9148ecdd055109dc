"""The published configs of the real video diffusion models in ``configs/``, built full size.

The JSON files are facts copied from the model hubs (no weights). Fast tests build each
full-size architecture on the meta device (real shapes, no memory, well under a second) and check
it against independent facts: the well-known parameter counts, and the feature shape ``moft.method.capture``
gives at the default site for the size each model is made for (``CAPTURE_TABLE``; the paper's
AnimateDiff at 512x512x16 gives 1280x32x32 per frame). The ``slow`` tests (still run in CI, on CPU)
build AnimateDiff and ZeroScope with random fp32 weights (~5-6 GiB each, one model at a time,
freed afterwards) and run a real forward at tiny latents with a plain forward hook on
``up_blocks[1]``.
"""

from __future__ import annotations

import gc
import inspect
import json
import time
from pathlib import Path

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
accelerate = pytest.importorskip("accelerate")

from accelerate import init_empty_weights  # noqa: E402
from diffusers import (  # noqa: E402
    MotionAdapter,
    UNet2DConditionModel,
    UNet3DConditionModel,
    UNetMotionModel,
    UNetSpatioTemporalConditionModel,
)

CONFIG_DIR = Path(__file__).parents[1] / "configs"
META = torch.device("meta")

# Tiny forward used everywhere: batch 1, 16 frames, 8x8 latents (a 64x64 pixel video).
BATCH, FRAMES, LATENT = 1, 16, 8
# 8x8 latents go 8 -> 4 -> 2 -> 1 through the three downsamplers; up_blocks[0] upsamples
# 1 -> 2 and up_blocks[1] upsamples 2 -> 4, so up_blocks[1] emits (B*F, 1280, 4, 4), i.e.
# latent/2 per side (measured; the same on meta and with real weights).
UP1_SHAPE = (BATCH * FRAMES, 1280, LATENT // 2, LATENT // 2)

# Parameter counts of the full-size architectures (meta build). SD 1.5's 859,520,964 is the
# well-known figure; the others match the published fp32/fp16 weight file sizes
# (adapter 1.81 GB fp32, text-to-video/zeroscope UNet 2.82 GB fp16, SVD-XT UNet 3.05 GB fp16).
PARAMS = {
    "sd15_unet": 859_520_964,
    "motion_adapter_v1_5_2": 453_209_280,
    "animatediff_unet_motion": 859_520_964 + 453_209_280,
    "zeroscope_unet3d": 1_411_233_860,
    "svd_xt_unet": 1_524_623_082,
}


def load_config(name: str) -> dict:
    """The published config ``configs/<name>.json`` (``.json`` optional) as a dict."""
    path = CONFIG_DIR / (name if name.endswith(".json") else f"{name}.json")
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def build_on_meta(cls, config: dict):
    """Instantiate ``cls`` from ``config`` with every parameter and buffer on the meta device."""
    with init_empty_weights(include_buffers=True):
        model = cls.from_config(config)
    # A few parameters are built with the legacy ``torch.Tensor([...])`` constructor, which
    # ignores the meta patch (SVD's AlphaBlender ``mix_factor``): move the stragglers too.
    return model.to(META)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def capture_output(module, store: list):
    """A plain forward hook that records the (first) output tensor of ``module``."""

    def hook(_module, _inputs, output):
        store.append(output[0] if isinstance(output, tuple) else output)

    return module.register_forward_hook(hook)


def peak_rss_gib() -> float | None:
    """VmHWM of this process in GiB (Linux), or None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def reset_peak_rss() -> None:
    """Reset VmHWM so the next reading is this test's peak (Linux >= 4.0; no-op elsewhere)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def free() -> None:
    gc.collect()


def build_animatediff(device_meta: bool):
    """SD 1.5 UNet + v1-5-2 motion adapter -> UNetMotionModel, the way AnimateDiffPipeline does it.

    On meta the full ``from_unet2d`` path runs, weight copies included. For random CPU weights
    the two sources stay on meta and ``load_weights=False`` (nothing to copy from random
    sources anyway), so only the UNetMotionModel itself is allocated: ~4.9 GiB instead of
    ~9.8 GiB with real UNet2D + adapter + motion model alive at once.
    """
    with init_empty_weights(include_buffers=True):
        unet = UNet2DConditionModel.from_config(load_config("animatediff-sd15-unet"))
        adapter = MotionAdapter.from_config(load_config("animatediff-motion-adapter-v1-5-2"))
        if device_meta:
            model = UNetMotionModel.from_unet2d(unet, adapter)
    if device_meta:
        model = model.to(META)
    else:
        model = UNetMotionModel.from_unet2d(unet, adapter, load_weights=False)
    del unet, adapter
    free()
    return model


def animatediff_inputs(device):
    sample = torch.randn(BATCH, 4, FRAMES, LATENT, LATENT, device=device)
    # UNetMotionModel wants one text embedding per frame: (B*F, 77, 768).
    text = torch.randn(BATCH * FRAMES, 77, 768, device=device)
    return sample, torch.tensor([500], device=device), text


def zeroscope_inputs(device):
    sample = torch.randn(BATCH, 4, FRAMES, LATENT, LATENT, device=device)
    # UNet3DConditionModel repeats the embedding per frame itself: (B, 77, 1024).
    text = torch.randn(BATCH, 77, 1024, device=device)
    return sample, torch.tensor([500], device=device), text


# --------------------------------------------------------------------------- config facts


@pytest.mark.parametrize(
    ("name", "class_name"),
    [
        ("animatediff-sd15-unet", "UNet2DConditionModel"),
        ("animatediff-motion-adapter-v1-5-2", "MotionAdapter"),
        ("zeroscope-v2-unet3d", "UNet3DConditionModel"),
        ("svd-xt-unet", "UNetSpatioTemporalConditionModel"),
    ],
)
def test_configs_name_a_diffusers_class(name, class_name):
    config = load_config(name)
    assert config["_class_name"] == class_name
    assert hasattr(diffusers, class_name)


def test_motion_adapter_keys_are_all_accepted():
    accepted = set(inspect.signature(MotionAdapter.__init__).parameters) - {"self"}
    keys = {k for k in load_config("animatediff-motion-adapter-v1-5-2") if not k.startswith("_")}
    assert keys <= accepted, keys - accepted


# --------------------------------------------------------------------------- meta device


@pytest.mark.parametrize(
    ("key", "cls", "name"),
    [
        ("sd15_unet", UNet2DConditionModel, "animatediff-sd15-unet"),
        ("motion_adapter_v1_5_2", MotionAdapter, "animatediff-motion-adapter-v1-5-2"),
        ("zeroscope_unet3d", UNet3DConditionModel, "zeroscope-v2-unet3d"),
        ("svd_xt_unet", UNetSpatioTemporalConditionModel, "svd-xt-unet"),
    ],
)
def test_parameter_counts_on_meta(key, cls, name):
    assert n_params(build_on_meta(cls, load_config(name))) == PARAMS[key]


def test_animatediff_meta_build_has_the_motion_modules():
    model = build_animatediff(device_meta=True)
    assert n_params(model) == PARAMS["animatediff_unet_motion"]
    names = dict(model.named_modules())
    assert "up_blocks.1.motion_modules.0" in names
    assert "mid_block.motion_modules.0" in names  # use_motion_mid_block=True (v2 adapter)
    assert len(model.up_blocks[1].motion_modules) == 3  # layers_per_block + 1 in up blocks


# ------------------------------------------------- moft.method.capture on the full-size models (meta device)
#
# One row per published model: its config file(s), the size it is made for (frames, height, width in
# pixels), and the shape ``moft.method.capture`` gives at the architecture's default site (``up_blocks.1``,
# the paper's "after upper block 1"): (B, F, C, H', W'). The U-Nets have three 2x downsamplers and
# up_blocks.1 ends in a 2x upsampler, so H' = H / 8 (VAE) / 8 * 4 = H / 16 -- for AnimateDiff at
# 512x512x16 the official code's 1280x32x32 per frame (docs: /work/shared/docs/paper-notes.md, the
# forked U-Net's ``guidance_layer=[2]``). A DiT model adds a row with its builder and conditioning.


def _build(files: tuple[str, ...]):
    """The denoiser of ``files`` on the meta device: one config, or SD-1.5 UNet + motion adapter."""
    if files == ("animatediff-sd15-unet", "animatediff-motion-adapter-v1-5-2"):
        return build_animatediff(device_meta=True)
    (name,) = files
    config = load_config(name)
    return build_on_meta(getattr(diffusers, config["_class_name"]), config)


def _cond(model, batch: int, frames: int, h: int, w: int) -> dict:
    """Conditioning of the right width for ``moft.models.adapters.call_denoiser``, on the meta device."""
    from moft.models.adapters import architecture_of

    arch = architecture_of(model)
    dim = model.config.cross_attention_dim
    cond = {"encoder_hidden_states": torch.empty(batch, 1 if arch.added_time_ids else 77, dim, device=META)}
    if arch.added_time_ids:
        cond["added_time_ids"] = torch.empty(batch, 3, device=META)
    if arch.concat_image_latents:
        cond["concat"] = torch.empty(batch, frames, 4, h, w, device=META)
    return cond


CAPTURE_TABLE = [
    # config file(s) -> class, (frames, height, width) -> capture at the default site (B, F, C, H', W')
    (("animatediff-sd15-unet", "animatediff-motion-adapter-v1-5-2"), "UNetMotionModel",
     (16, 512, 512), (1, 16, 1280, 32, 32)),
    (("zeroscope-v2-unet3d",), "UNet3DConditionModel", (24, 320, 576), (1, 24, 1280, 20, 36)),
    (("svd-xt-unet",), "UNetSpatioTemporalConditionModel", (25, 576, 1024), (1, 25, 1280, 36, 64)),
]


@pytest.mark.parametrize(("files", "class_name", "size", "expected"), CAPTURE_TABLE,
                         ids=[row[1] for row in CAPTURE_TABLE])
def test_capture_at_the_default_site_of_the_full_size_model(files, class_name, size, expected):
    from moft.models.adapters import architecture_of, call_denoiser
    from moft.method.capture import capture

    model = _build(files)
    assert type(model).__name__ == class_name
    frames, height, width = size
    h, w = height // 8, width // 8  # SD VAE: 8x
    z = torch.empty(1, frames, 4, h, w, device=META)  # (B, F, C, h, w) canonical latents
    with torch.no_grad(), capture(model, stop=True) as cap:
        call_denoiser(model, z, 500, _cond(model, 1, frames, h, w))
    assert list(cap.features) == [architecture_of(model).default_site]
    assert tuple(cap.output.shape) == expected
    assert not model._forward_hooks and not model.get_submodule("up_blocks.1")._forward_hooks


def test_capture_of_the_full_size_model_without_stop_returns_the_latent_shape():
    """The whole meta forward runs through ``call_denoiser`` and comes back in canonical layout."""
    from moft.models.adapters import call_denoiser
    from moft.method.capture import capture

    model = _build(("zeroscope-v2-unet3d",))
    z = torch.empty(1, 8, 4, 16, 24, device=META)
    with torch.no_grad(), capture(model) as cap:
        out = call_denoiser(model, z, 500, _cond(model, 1, 8, 16, 24))
    assert tuple(out.shape) == (1, 8, 4, 16, 24)
    assert tuple(cap.output.shape) == (1, 8, 1280, 8, 12)


# --------------------------------------------------------------------------- real weights (slow)


def _report(name: str, seconds_build: float, seconds_forward: float, shape) -> None:
    peak = peak_rss_gib()
    peak_text = f"{peak:.2f} GiB" if peak is not None else "n/a"
    print(f"\n{name}: build {seconds_build:.1f} s, forward {seconds_forward:.1f} s, "
          f"up_blocks[1] output {tuple(shape)}, peak RSS {peak_text}")


@pytest.mark.slow
def test_animatediff_random_weights_forward_on_cpu():
    free()
    reset_peak_rss()
    torch.manual_seed(0)
    start = time.perf_counter()
    model = build_animatediff(device_meta=False).eval()
    built = time.perf_counter() - start
    try:
        assert {p.device.type for p in model.parameters()} == {"cpu"}
        assert n_params(model) == PARAMS["animatediff_unet_motion"]
        captured: list = []
        handle = capture_output(model.up_blocks[1], captured)
        start = time.perf_counter()
        with torch.no_grad():
            out = model(*animatediff_inputs("cpu")).sample
        forward = time.perf_counter() - start
        handle.remove()
        assert tuple(out.shape) == (BATCH, 4, FRAMES, LATENT, LATENT)
        assert tuple(captured[0].shape) == UP1_SHAPE
        assert torch.isfinite(captured[0]).all()
        _report("AnimateDiff (SD1.5 + motion adapter v1-5-2)", built, forward, captured[0].shape)
    finally:
        del model
        free()


@pytest.mark.slow
def test_zeroscope_random_weights_forward_on_cpu():
    free()
    reset_peak_rss()
    torch.manual_seed(0)
    start = time.perf_counter()
    model = UNet3DConditionModel.from_config(load_config("zeroscope-v2-unet3d")).eval()
    built = time.perf_counter() - start
    try:
        captured: list = []
        handle = capture_output(model.up_blocks[1], captured)
        start = time.perf_counter()
        with torch.no_grad():
            out = model(*zeroscope_inputs("cpu")).sample
        forward = time.perf_counter() - start
        handle.remove()
        assert tuple(out.shape) == (BATCH, 4, FRAMES, LATENT, LATENT)
        assert tuple(captured[0].shape) == UP1_SHAPE
        assert torch.isfinite(captured[0]).all()
        _report("ZeroScope v2 576w UNet3D", built, forward, captured[0].shape)
    finally:
        del model
        free()
