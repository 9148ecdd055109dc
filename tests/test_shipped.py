"""The shipped model: its files load through diffusers, its channels fit it, it makes a coherent video.

A fast smoke check of what ``scripts/model_quality.py`` measures in full.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from moft.metrics import path_fit, track_centroid
from moft.models import SHIPPED_DIR, default_channels, load_pipeline, model_defaults
from moft.synthetic import COLORS

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
def test_shipped_model_makes_a_coherent_object(shipped, direction, color, seed):
    """One object of the prompt's colour in every frame, moving smoothly (no jumps).

    Whether it moves the prompt's way is a quality bar the current model does not meet yet
    (scripts/model_quality.py: 12%, chance 12.5%), so it is not asserted here.
    """
    from moft.sampler import sample

    frames = sample(shipped, f"a {color} disk moving {direction}", seed=seed,
                    guidance_scale=model_defaults()["guidance_scale"]).frames
    path = track_centroid(frames, color=COLORS[color])
    assert np.isfinite(path).all(), "no object found in some frame"
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    assert steps.max() < 5.0
    assert path_fit(path)["r2"] > 0.8
