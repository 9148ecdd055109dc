"""The published Wan 2.1 and CogVideoX configs in ``configs/``: full-size builds on the meta device
(no weights, no RAM), ``moft.method.capture`` at the models' real video sizes, and the VAE facts moft reads."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import diffusers
from moft.models.adapters import call_denoiser, default_site
from moft.method.capture import capture
from moft.models.pipeline import FramesError, check_frames, latent_channels, latent_frames, temporal_scale, vae_scale

CONFIG_DIR = Path(__file__).parents[1] / "configs"


def build(name: str):
    """``configs/<name>.json`` built on the meta device."""
    config = json.loads((CONFIG_DIR / f"{name}.json").read_text())
    cls = getattr(diffusers, config["_class_name"])
    with torch.device("meta"):
        return cls.from_config(config)


# name, parameters (from the model's name: "1.3B", "14B", "2B", "5B"), video (F, H, W), text length,
# default site, the features moft sees there (B, F', C, H', W'): patch 2 on latents H/8 x W/8, F' = (F-1)/4+1
DITS = [
    ("wan2.1-t2v-1.3b-transformer", (1.2e9, 1.5e9), (81, 480, 832), 512, "blocks.14", (1, 21, 1536, 30, 52)),
    ("wan2.1-t2v-14b-transformer", (13e9, 15e9), (81, 480, 832), 512, "blocks.19", (1, 21, 5120, 30, 52)),
    ("cogvideox-2b-transformer", (1.5e9, 2.0e9), (49, 480, 720), 226, "transformer_blocks.15", (1, 13, 1920, 30, 45)),
    ("cogvideox-5b-transformer", (5.0e9, 6.0e9), (49, 480, 720), 226, "transformer_blocks.20", (1, 13, 3072, 30, 45)),
]


@pytest.mark.parametrize("name, params, video, text, site, shape", DITS, ids=[d[0] for d in DITS])
def test_capture_at_real_size_on_a_meta_build(name, params, video, text, site, shape):
    net = build(name)
    assert params[0] < sum(p.numel() for p in net.parameters()) < params[1]
    assert default_site(net) == site
    f, h, w = video
    z = torch.empty(1, (f - 1) // 4 + 1, 16, h // 8, w // 8, device="meta")  # (B, F', C, h, w)
    cond = {"encoder_hidden_states": torch.empty(1, text, 4096, device="meta")}
    with capture(net, stop=True) as cap:
        call_denoiser(net, z, torch.tensor(500.0, device="meta"), cond)
    assert tuple(cap.output.shape) == shape


@pytest.mark.parametrize("name", ["wan2.1-vae", "cogvideox-2b-vae", "cogvideox-5b-vae"])
def test_vae_facts(name):
    pipe = SimpleNamespace(vae=build(name))
    assert (vae_scale(pipe), temporal_scale(pipe), latent_channels(pipe)) == (8, 4, 16)
    assert latent_frames(pipe, 81) == 21 and latent_frames(pipe, 49) == 13
    with pytest.raises(FramesError, match="77, 81 or 85"):
        check_frames(pipe, 80)
