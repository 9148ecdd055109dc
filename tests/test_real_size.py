"""scripts/real_size.py: the tiny CPU mode end to end, and the full-size builds' latent grids on the meta device."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import real_size  # noqa: E402

from moft.models.latents import initial_noise  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")


def test_tiny_mode_measures_guided_and_unguided_and_lists_the_full_size_rows(tmp_path):
    out = tmp_path / "rs"
    report = real_size.main(["--tiny", "--config", "tiny-wan", "--steps", "2", "--levers", "none,checkpointing",
                             "--device", "cpu", "--out", str(out)])
    rows = [r for r in report["rows"] if r["config"] == "tiny-wan"]
    assert [(r["case"], r["levers"], r["status"]) for r in rows] == [
        ("unguided", "none", "measured"), ("guided", "none", "measured"), ("guided", "checkpointing", "measured")]
    plain, guided, ckpt = rows
    assert guided["backwards"] == 4 and plain["backwards"] == 0      # 1 guided step x 4 Adam iterations
    assert ckpt["backwards"] == guided["backwards"]
    assert guided["forwards"] > plain["forwards"]
    for r in rows:
        assert r["wall_s"] > 0 and r["peak_gib"] > 0 and r["device"] == "cpu" and r["dtype"] == "float32"
    assert guided["wall_ratio"] == pytest.approx(guided["wall_s"] / plain["wall_s"], abs=0.01)
    full = {r["config"]: r for r in report["rows"] if r["config"] in real_size.CONFIGS}
    assert set(full) == set(real_size.CONFIGS)
    assert all(r["status"].startswith("not measured: no accelerator") for r in full.values())
    assert json.loads(out.with_suffix(".json").read_text())["rows"] == json.loads(json.dumps(report["rows"]))
    md = out.with_suffix(".md").read_text()
    assert "75 GB" in md and "19.3 GB" in md and "4.9 GB" in md and real_size.GPU_COMMAND in md


@pytest.mark.parametrize("name, params", [("animatediff", 1312.7), ("zeroscope", 1411.2), ("wan2.1-t2v-1.3b", 1419.0),
                                          ("wan2.1-t2v-14b", 14288.5), ("cogvideox-5b", 5570.3)])
def test_full_size_builds_on_meta_reach_the_native_latent_grid(name, params):
    """The published parameter counts, and the stand-in VAE sized so the noise is the native latent grid."""
    cfg = real_size.CONFIGS[name]
    net = real_size.build_denoiser(cfg, None)
    assert next(net.parameters()).device == torch.device("meta")
    assert sum(p.numel() for p in net.parameters()) / 1e6 == pytest.approx(params, abs=0.1)
    pipe = real_size.host_pipeline(cfg, net)
    f, h, w = real_size.video_size(pipe, cfg)
    z = initial_noise(pipe, num_frames=f, height=h, width=w, seed=0)   # (1, F', C, h, w)
    assert tuple(z.shape[1:2]) + tuple(z.shape[-2:]) == cfg.latent
    assert z.shape[2] == (net.config.in_channels if name != "animatediff" else 4)


def test_materialise_gives_finite_random_weights_and_keeps_buffers():
    cfg = real_size.TINY["tiny-wan"]
    from moft.models.tiny import build_tiny_wan

    base = build_tiny_wan()
    net = real_size.materialise(real_size.build_denoiser(cfg, base), torch.device("cpu"), torch.bfloat16)
    weights = dict(net.named_parameters())
    keep = net._keep_in_fp32_modules or []
    for name, p in weights.items():
        want = torch.float32 if any(k in name.split(".") for k in keep) else torch.bfloat16
        assert p.device.type == "cpu" and p.dtype == want and torch.isfinite(p).all(), name
    assert sum(p.dtype == torch.bfloat16 for p in weights.values()) > len(weights) / 2
    big = [p for n, p in weights.items() if p.ndim == 2]
    assert 0.015 < float(torch.cat([p.float().flatten() for p in big]).std()) < 0.025      # normal, std 0.02
    ref = dict(base.transformer.named_buffers())
    for name, buf in net.named_buffers():                              # rotary tables computed, not garbage
        kept = any(k in name.split(".")[:-1] for k in keep)              # Wan keeps its rotary tables in float32
        assert buf.dtype == (torch.bfloat16 if ref[name].is_floating_point() and not kept else ref[name].dtype)
        torch.testing.assert_close(buf.float(), ref[name].float(), rtol=1e-2, atol=1e-2)   # bfloat16 rounding
