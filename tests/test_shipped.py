"""The shipped model: its files load through diffusers, its channels fit it, it makes a coherent video.

A fast smoke check of what ``scripts/model_quality.py`` measures in full.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from moft.metrics import direction_success, path_fit, track_centroid
from moft.models import SHIPPED_DIR, default_channels, load_pipeline, model_defaults
from moft.synthetic import COLORS, DIRECTIONS

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def shipped():
    return load_pipeline()


def test_shipped_files_are_small_safetensors():
    folder = SHIPPED_DIR / "moft-tiny"
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".ckpt")]
    assert sum(p.stat().st_size for p in files) < 25 * 2**20


def test_shipped_pipeline_is_a_diffusers_animatediff_pipeline(shipped):
    assert type(shipped).__name__ == "AnimateDiffPipeline"
    assert type(shipped.unet).__name__ == "UNetMotionModel"
    assert json.loads((SHIPPED_DIR / "moft-tiny" / "model_index.json").read_text())["_class_name"] == "AnimateDiffPipeline"


def test_shipped_channels_fit_the_shipped_site(shipped):
    from moft.extract import site_channels

    ch = default_channels()
    ch.check(site_channels(shipped))
    assert ch.meta["site"] == "up_blocks.1" and ch.baseline is not None
    assert len(ch.horizontal) == max(1, round(0.04 * ch.num_channels))


def test_shipped_defaults_name_a_prompt_and_cfg_scale():
    d = model_defaults()
    assert isinstance(d["prompt"], str) and d["guidance_scale"] > 1


@pytest.mark.parametrize("direction, color, seed", [("right", "red", 0), ("down", "blue", 1)])
def test_shipped_model_makes_a_coherent_moving_object(shipped, direction, color, seed):
    from moft.sampler import sample

    frames = sample(shipped, f"a {color} disk moving {direction}", seed=seed,
                    guidance_scale=model_defaults()["guidance_scale"]).frames
    path = track_centroid(frames, color=COLORS[color])
    assert np.isfinite(path).all(), "no object found in some frame"
    fit = path_fit(path)
    assert fit["r2"] > 0.8 and fit["speed"] > 0.5
    assert direction_success(path, np.stack([np.zeros(2), np.asarray(DIRECTIONS[direction])]))
