"""The shipped models (moft-tiny, a U-Net; moft-tiny-wan, a DiT): their files load through diffusers, their
channels fit them, they make a coherent video that follows the prompt's direction, and ``moft control``'s defaults
steer them.

A fast smoke check of what ``scripts/model_quality.py`` measures in full.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from moft.eval.metrics import direction_success, path_fit, track_centroid
from moft.models.loading import SHIPPED_DIR, load_pipeline, model_defaults
from moft.method.channels import default_channels
from moft.models.pipeline import default_video_size
from moft.io.synthetic import COLORS, DIRECTIONS

pytestmark = pytest.mark.usefixtures("single_thread")


@dataclass(frozen=True)
class Shipped:
    """What each shipped organism is, and the control rate measured on it (the module's ``__main__``)."""

    pipeline: str
    denoiser: str
    site: str
    frames: int
    seeds: tuple  # seeds of the steering check (left and right on each)
    min_steered: int  # of 2 * len(seeds) runs
    steer_px: float  # pushed at least this far the requested way (px; the request asks 1.6 px a frame)
    channel_fraction: float  # of the site's channels in the shipped channel file (chosen with the control defaults)


SHIPPED = {
    # seeds 0-5, 2026-11-30, the cosine + Adam default: toward_px left 9.17 6.08 8.85 11.28 7.99 9.46, right 9.47 8.68
    # 8.60 6.53 8.68 9.60 -> 12 of 12 beyond 6 px of the 11.2 asked (the old sgd default: 11 of 12 beyond 1 px,
    # -0.15 to 5.96). The check asks 7 of 8 beyond 4 px (a third of the request).
    "moft-tiny": Shipped("AnimateDiffPipeline", "UNetMotionModel", "up_blocks.1", 8, (0, 1, 2, 3), 7, 4.0, 0.04),
    # seeds 0-5, 2026-11-30, its all-channel cosine + Adam default: toward_px left 8.61 10.04 9.16 12.18 9.90 13.05,
    # right 11.56 12.19 13.38 7.67 10.54 8.12 -> 12 of 12 beyond 7.5 px of the 12.8 asked (the first default, step 4
    # on the 4% channels: 8 of 12 beyond 1 px). The check asks 7 of 8 beyond 4 px. (The suites' split rate says how
    # often such a push is a copy rather than a move: docs/moft-tiny-wan.md.)
    "moft-tiny-wan": Shipped("WanPipeline", "WanTransformer3DModel", "blocks.3", 9, (0, 1, 2, 3), 7, 4.0, 1.0),
}
STILL_PROMPT = "a red disk standing still"


@pytest.fixture(scope="module", params=list(SHIPPED))
def shipped(request):
    return request.param, load_pipeline(request.param)


@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_files_are_small_safetensors(name):
    folder = SHIPPED_DIR / name
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".ckpt")]
    assert sum(p.stat().st_size for p in files) < 25 * 2**20


def test_shipped_pipeline_is_a_diffusers_pipeline_of_its_architecture(shipped):
    name, pipe = shipped
    facts = SHIPPED[name]
    assert type(pipe).__name__ == facts.pipeline
    assert type(getattr(pipe, "unet", None) or pipe.transformer).__name__ == facts.denoiser
    assert json.loads((SHIPPED_DIR / name / "model_index.json").read_text())["_class_name"] == facts.pipeline
    assert default_video_size(pipe) == (facts.frames, 32, 32)


def test_shipped_channels_fit_the_shipped_site(shipped):
    from moft.front.extract import site_channels

    name, pipe = shipped
    ch = default_channels(name)
    ch.check(site_channels(pipe))
    assert ch.meta["site"] == SHIPPED[name].site and ch.baseline is not None
    assert len(ch.horizontal) == max(1, round(SHIPPED[name].channel_fraction * ch.num_channels))


@pytest.mark.parametrize("name", list(SHIPPED))
def test_shipped_defaults_name_a_prompt_and_cfg_scale(name):
    d = model_defaults(name)
    assert isinstance(d["prompt"], str) and d["guidance_scale"] > 1


@pytest.mark.parametrize("direction, color, seed", [("right", "red", 0), ("down", "blue", 1)])
def test_shipped_model_makes_a_coherent_object(shipped, direction, color, seed):
    """One object of the prompt's colour in every frame, moving smoothly (no jumps) the prompt's way
    (scripts/model_quality.py measures both over 64 samples)."""
    from moft.method.sampler import sample

    name, pipe = shipped
    frames = sample(pipe, f"a {color} disk moving {direction}", seed=seed,
                    guidance_scale=model_defaults(name)["guidance_scale"]).frames
    assert len(frames) == SHIPPED[name].frames
    path = track_centroid(frames, color=COLORS[color])
    assert np.isfinite(path).all(), "no object found in some frame"
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    assert steps.max() < 5.0
    assert path_fit(path)["r2"] > 0.8
    assert direction_success(path, path[0] + np.arange(len(path))[:, None] * np.asarray(DIRECTIONS[direction])) == 1.0


@pytest.mark.parametrize("name", list(SHIPPED))
def test_the_commands_run_on_the_shipped_model_by_name(name, tmp_path):
    """``--model NAME`` on info, extract (a prompt, its features at the shipped site) and control (an example
    trajectory, which leaves the frame count to the model)."""
    from safetensors.torch import load_file
    from typer.testing import CliRunner

    from moft.front.cli import app

    run = lambda *a: CliRunner().invoke(app, [str(x) for x in a])  # noqa: E731
    facts = SHIPPED[name]
    r = run("info", "--model", name)
    assert r.exit_code == 0, r.output
    assert facts.denoiser in r.stdout and facts.site in r.stdout
    r = run("extract", "--model", name, "--prompt", "a red disk moving left", "--steps", 6, "--out", tmp_path / "f.safetensors")
    assert r.exit_code == 0, r.output
    saved = load_file(tmp_path / "f.safetensors")
    assert saved["features"].shape[0] == saved["moft"].shape[0] == facts.frames  # (F, C, h, w)
    assert saved["moft"].shape[1] == len(saved["channels"])  # the shipped motion channels
    out = tmp_path / "left.gif"
    r = run("control", SHIPPED_DIR.parents[3] / "examples" / "object_left.json", "--model", name, "--steps", 6,
            "--out", out)
    assert r.exit_code == 0, r.output
    import imageio.v3 as iio

    assert iio.imread(out).shape[0] == facts.frames  # the model's clip length, as the example leaves it


def toward_px(name: str, pipe, seed: int, direction: str) -> float:
    """Pixels the model folder's control defaults (moft.json: target kind and guidance, chosen by the
    tuning suite) push a still red disk the requested way; the request asks 1.6 px a frame (the paper's curve
    targets move it by -0.4 to 0.4 px; the suites in docs/results measure the averages)."""
    from moft.front.control import control
    from moft.eval.objects import object_box
    from moft.eval.metrics import steering
    from moft.method.sampler import sample
    from moft.io.trajectory import parse_trajectory

    src = sample(pipe, STILL_PROMPT, seed=seed, guidance_scale=model_defaults(name)["guidance_scale"])
    frames = len(src.frames)
    start, box = object_box(src.frames, "red")
    traj = parse_trajectory({"version": 1, "frames": frames, "regions": [{"mask": {"box": box}, "direction": direction}]})
    res = control(pipe, traj, prompt=STILL_PROMPT, channels=default_channels(name), seed=seed)
    requested = start + np.arange(frames)[:, None] * 1.6 * np.asarray(DIRECTIONS[direction])
    red = COLORS["red"]
    return steering(track_centroid(res.frames, color=red), track_centroid(src.frames, color=red),
                    requested)["toward_px"]


@pytest.mark.slow
def test_shipped_control_defaults_move_the_object_the_requested_way_on_most_seeds(shipped):
    """A still object pushed left and right on a few seeds moves the requested way (beyond the organism's
    ``steer_px``) in most runs: a rate, not one lucky seed."""
    name, pipe = shipped
    facts = SHIPPED[name]
    moved = {(d, seed): toward_px(name, pipe, seed, d) for d in ("left", "right") for seed in facts.seeds}
    steered = sum(v > facts.steer_px for v in moved.values())
    assert steered >= facts.min_steered, f"{name}: {steered} of {len(moved)} steered; toward_px {moved}"


if __name__ == "__main__":  # the per-seed figures: python tests/test_shipped.py [moft-tiny-wan] 0 1 2 3 4 5
    import sys
    import time

    import torch

    torch.set_num_threads(1)
    args = sys.argv[1:]
    name = args.pop(0) if args and args[0] in SHIPPED else "moft-tiny"
    pipe = load_pipeline(name)
    for direction in ("left", "right"):
        for seed in [int(s) for s in args] or SHIPPED[name].seeds:
            t0 = time.perf_counter()
            v = toward_px(name, pipe, seed, direction)
            print(f"{name} {direction:5s} seed {seed}: toward_px {v:6.2f}  ({time.perf_counter() - t0:.0f} s)", flush=True)
