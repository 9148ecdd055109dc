"""The shipped model: its files load through diffusers, its channels fit it, it makes a coherent video
that follows the prompt's direction, and ``moft control``'s defaults steer it.

A fast smoke check of what ``scripts/model_quality.py`` measures in full.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from moft.eval.metrics import direction_success, path_fit, track_centroid
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
def test_shipped_model_makes_a_coherent_object(shipped, direction, color, seed):
    """One object of the prompt's colour in every frame, moving smoothly (no jumps) the prompt's way
    (scripts/model_quality.py measures both over 64 samples)."""
    from moft.sampler import sample

    frames = sample(shipped, f"a {color} disk moving {direction}", seed=seed,
                    guidance_scale=model_defaults()["guidance_scale"]).frames
    path = track_centroid(frames, color=COLORS[color])
    assert np.isfinite(path).all(), "no object found in some frame"
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    assert steps.max() < 5.0
    assert path_fit(path)["r2"] > 0.8
    assert direction_success(path, path[0] + np.arange(len(path))[:, None] * np.asarray(DIRECTIONS[direction])) == 1.0


# The control defaults must steer at a rate, not on one lucky seed. Measured with the command in the
# module's ``__main__`` (seeds 0-5, 2026-11-30, the cosine + Adam default): toward_px left 9.17 6.08 8.85
# 11.28 7.99 9.46, right 9.47 8.68 8.60 6.53 8.68 9.60 -> 12 of 12 beyond 6 px of the 11.2 asked (the old
# sgd default: 11 of 12 beyond 1 px, -0.15 to 5.96). The check asks 7 of 8 beyond 4 px.
SEEDS = (0, 1, 2, 3)
MIN_STEERED = 7  # of 2 * len(SEEDS) runs (left and right per seed): an 87% rate
STEER_PX = 4.0  # pushed at least this far the requested way (a third of the request)
STILL_PROMPT = "a red disk standing still"


def toward_px(pipe, seed: int, direction: str) -> float:
    """Pixels the model folder's control defaults (moft.json: target kind and guidance, chosen by the
    tuning suite) push a still red disk the requested way; the request asks 11 px (the paper's curve
    targets move it by -0.4 to 0.4 px; the suites in docs/results measure the averages)."""
    from moft.control import control
    from moft.eval.evaluate import object_box
    from moft.eval.metrics import steering
    from moft.sampler import sample
    from moft.trajectory import parse_trajectory

    src = sample(pipe, STILL_PROMPT, seed=seed, guidance_scale=model_defaults()["guidance_scale"])
    start, box = object_box(src.frames, "red")
    traj = parse_trajectory({"version": 1, "frames": 8, "regions": [{"mask": {"box": box}, "direction": direction}]})
    res = control(pipe, traj, prompt=STILL_PROMPT, channels=default_channels(), seed=seed)
    requested = start + np.arange(8)[:, None] * 1.6 * np.asarray(DIRECTIONS[direction])
    red = COLORS["red"]
    return steering(track_centroid(res.frames, color=red), track_centroid(src.frames, color=red),
                    requested)["toward_px"]


@pytest.mark.slow
def test_shipped_control_defaults_move_the_object_the_requested_way_on_most_seeds(shipped):
    """A still object pushed left and right on four seeds moves more than 4 px the requested way in
    at least 7 of the 8 runs."""
    moved = {(d, seed): toward_px(shipped, seed, d) for d in ("left", "right") for seed in SEEDS}
    steered = sum(v > STEER_PX for v in moved.values())
    assert steered >= MIN_STEERED, f"{steered} of {len(moved)} steered; toward_px {moved}"


if __name__ == "__main__":  # measure the per-seed figures: python tests/test_shipped.py 0 1 2 3 4 5
    import sys
    import time

    import torch

    torch.set_num_threads(1)
    pipe = load_pipeline()
    for direction in ("left", "right"):
        for seed in [int(s) for s in sys.argv[1:]] or SEEDS:
            t0 = time.perf_counter()
            v = toward_px(pipe, seed, direction)
            print(f"{direction:5s} seed {seed}: toward_px {v:6.2f}  ({time.perf_counter() - t0:.0f} s)", flush=True)
