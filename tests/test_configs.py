"""Structure tests on the PUBLISHED configs of the real video diffusion models in ``configs/``.

The JSON files are facts copied from the model hubs (no weights). Fast tests build each
full-size architecture on the meta device (no RAM, well under a second) and run a meta
forward, which gives exact output shapes. The ``slow`` tests (still run in CI, on CPU) build
AnimateDiff and ZeroScope with random fp32 weights (~5-6 GiB each, one model at a time,
freed afterwards) and run a real forward at tiny latents with a plain forward hook on
``up_blocks[1]``, the block whose 1280-channel output the MOFT paper reads motion from.
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
def test_configs_keep_hub_metadata(name, class_name):
    config = load_config(name)
    assert config["_class_name"] == class_name
    assert isinstance(config["_diffusers_version"], str) and config["_diffusers_version"]
    assert config["block_out_channels"] == [320, 640, 1280, 1280]
    assert load_config(name + ".json") == config


def test_published_facts():
    sd = load_config("animatediff-sd15-unet")
    assert (sd["cross_attention_dim"], sd["attention_head_dim"], sd["layers_per_block"]) == (768, 8, 2)
    assert (sd["in_channels"], sd["out_channels"], sd["sample_size"]) == (4, 4, 64)

    ad = load_config("animatediff-motion-adapter-v1-5-2")
    assert ad["motion_layers_per_block"] == 2
    assert ad["motion_mid_block_layers_per_block"] == 1
    assert ad["motion_num_attention_heads"] == 8
    assert ad["motion_norm_num_groups"] == 32
    assert ad["motion_max_seq_length"] == 32
    assert ad["use_motion_mid_block"] is True
    assert ad["conv_in_channels"] is None

    zs = load_config("zeroscope-v2-unet3d")
    assert (zs["cross_attention_dim"], zs["attention_head_dim"], zs["norm_num_groups"]) == (1024, 64, 32)
    assert zs["layers_per_block"] == 2

    svd = load_config("svd-xt-unet")
    assert (svd["in_channels"], svd["out_channels"], svd["cross_attention_dim"]) == (8, 4, 1024)
    assert svd["num_attention_heads"] == [5, 10, 20, 20]
    assert svd["addition_time_embed_dim"] == 256
    assert svd["projection_class_embeddings_input_dim"] == 768
    assert svd["num_frames"] == 25
    assert svd["transformer_layers_per_block"] == 1


def test_motion_adapter_keys_are_all_accepted():
    accepted = set(inspect.signature(MotionAdapter.__init__).parameters) - {"self"}
    keys = {k for k in load_config("animatediff-motion-adapter-v1-5-2") if not k.startswith("_")}
    assert keys <= accepted, keys - accepted


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("animatediff-sd15-unet", UNet2DConditionModel),
        ("animatediff-motion-adapter-v1-5-2", MotionAdapter),
        ("zeroscope-v2-unet3d", UNet3DConditionModel),
        ("svd-xt-unet", UNetSpatioTemporalConditionModel),
    ],
)
def test_structural_keys_reach_the_model_config(name, cls):
    config = load_config(name)
    model = build_on_meta(cls, config)
    for key in ("block_out_channels", "cross_attention_dim", "attention_head_dim", "num_attention_heads",
                "layers_per_block", "motion_layers_per_block", "motion_num_attention_heads", "in_channels"):
        if key in config and key in model.config:
            value = model.config[key]
            assert (list(value) if isinstance(value, (list, tuple)) else value) == config[key], key


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


def test_animatediff_structure_on_meta():
    model = build_animatediff(device_meta=True)
    assert n_params(model) == PARAMS["animatediff_unet_motion"]
    names = dict(model.named_modules())
    assert "up_blocks.1.motion_modules.0" in names
    assert "mid_block.motion_modules.0" in names  # use_motion_mid_block=True (v2 adapter)
    up1 = model.up_blocks[1]
    assert type(up1).__name__ == "CrossAttnUpBlockMotion"
    assert up1.resnets[-1].conv2.out_channels == 1280
    assert up1.upsamplers[0].conv.out_channels == 1280
    assert len(up1.motion_modules) == 3  # layers_per_block + 1 in up blocks

    captured: list = []
    handle = capture_output(model.up_blocks[1], captured)
    with torch.no_grad():
        out = model(*animatediff_inputs(META)).sample
    handle.remove()
    assert tuple(out.shape) == (BATCH, 4, FRAMES, LATENT, LATENT)
    assert tuple(captured[0].shape) == UP1_SHAPE


def test_zeroscope_structure_on_meta():
    model = build_on_meta(UNet3DConditionModel, load_config("zeroscope-v2-unet3d"))
    names = dict(model.named_modules())
    assert "up_blocks.1" in names
    assert "up_blocks.1.temp_attentions.0" in names
    assert "up_blocks.1.temp_convs.0" in names
    assert model.up_blocks[1].resnets[-1].conv2.out_channels == 1280

    captured: list = []
    handle = capture_output(model.up_blocks[1], captured)
    with torch.no_grad():
        out = model(*zeroscope_inputs(META)).sample
    handle.remove()
    assert tuple(out.shape) == (BATCH, 4, FRAMES, LATENT, LATENT)
    assert tuple(captured[0].shape) == UP1_SHAPE


def test_svd_structure_on_meta():
    model = build_on_meta(UNetSpatioTemporalConditionModel, load_config("svd-xt-unet"))
    names = dict(model.named_modules())
    assert "up_blocks.1.attentions.0.temporal_transformer_blocks.0" in names
    assert model.up_blocks[1].resnets[-1].spatial_res_block.conv2.out_channels == 1280

    captured: list = []
    handle = capture_output(model.up_blocks[1], captured)
    # SVD's sample is (B, F, C, H, W) with C = 8 (4 noisy + 4 image latents); image
    # embedding (B, 1, 1024); added_time_ids (B, 3) = fps, motion bucket, noise aug.
    sample = torch.randn(BATCH, FRAMES, 8, LATENT, LATENT, device=META)
    with torch.no_grad():
        out = model(
            sample,
            torch.tensor([1.0], device=META),
            torch.randn(BATCH, 1, 1024, device=META),
            added_time_ids=torch.randn(BATCH, 3, device=META),
        ).sample
    handle.remove()
    assert tuple(out.shape) == (BATCH, FRAMES, 4, LATENT, LATENT)
    assert tuple(captured[0].shape) == UP1_SHAPE


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
