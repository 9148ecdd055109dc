"""``moft.control``: trajectory, reference and ready targets; diagnostics in the report."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import moft
from moft.control import control
from moft.sampler import GuidanceConfig
from moft.trajectory import load_trajectory

from conftest import FRAMES

G = GuidanceConfig(steps=(1, 3), iterations=1)


@pytest.fixture(scope="module")
def traj():
    from pathlib import Path

    return load_trajectory(Path(__file__).parents[1] / "examples" / "object_left.json", default_frames=FRAMES)


def test_control_from_a_trajectory_reports_losses_and_settings(animatediff, tiny_channels, traj):
    res = control(animatediff, traj, prompt="a red disk", channels=tiny_channels, steps=4, guidance=G, keep_source=True)
    assert res.frames.shape == (FRAMES, 32, 32, 3) and res.source_frames.shape == res.frames.shape
    r = res.report
    assert r["weight"] == 6.0 and r["guidance"]["steps"] == (1, 3)
    assert len(r["losses"]) == 2 and r["channels_digest"] == tiny_channels.digest()
    assert r["target"]["source"] == "trajectory"


def test_control_from_a_reference_video(animatediff, tiny_channels, traj):
    from moft.synthetic import make_clip

    ref = (make_clip(np.random.default_rng(0), kind="pan", direction="right").frames * 255).astype(np.uint8)
    res = control(animatediff, traj, prompt="a red disk", channels=tiny_channels, reference=ref, steps=4, guidance=G)
    assert res.report["target"]["source"] == "reference"
    assert res.target.masks.shape == (1, 16, 16)


def test_control_with_a_saved_target_and_init_latents_reproduces(tmp_path, animatediff, tiny_channels, traj):
    a = control(animatediff, traj, prompt="a red disk", channels=tiny_channels, steps=4, guidance=G, seed=3)
    a.target.save(tmp_path / "t.safetensors")
    b = control(animatediff, None, prompt="a red disk", target=moft.Target.load(tmp_path / "t.safetensors"), steps=4,
                guidance=G, init_latents=a.result.initial_latents, seed=99)
    assert np.array_equal(a.frames, b.frames)


def test_control_needs_channels_for_a_synthesized_target(animatediff, traj):
    with pytest.raises(ValueError, match="channels"):
        control(animatediff, traj, prompt="x", steps=4, guidance=G)


def test_two_regions_use_weight_8(animatediff, tiny_channels):
    from pathlib import Path

    two = load_trajectory(Path(__file__).parents[1] / "examples" / "two_objects.json", default_frames=FRAMES)
    res = control(animatediff, two, prompt="x", channels=tiny_channels, steps=3, guidance=GuidanceConfig(steps=(1, 2), iterations=1))
    assert res.report["weight"] == 8.0 and len(res.report["losses"][0]["regions"]) == 2


def test_control_with_a_drag_target_starts_from_the_source_noise(animatediff, tiny_channels, traj):
    g = GuidanceConfig(steps=(1, 3), iterations=1, loss="per_position")
    res = control(animatediff, traj, prompt="a red disk", channels=tiny_channels, steps=4, guidance=g, seed=5,
                  target_kind="drag", keep_source=True)
    assert res.report["target"]["source"] == "drag" and res.target.maps is not None
    assert res.proxy_frames.shape == (FRAMES, 32, 32, 3)
    np.testing.assert_allclose(res.proxy_frames[0], res.source_frames[0], atol=1e-6)  # frame 0 is the source's
    plain = control(animatediff, traj, prompt="a red disk", channels=tiny_channels, steps=4, guidance=g, seed=5,
                    keep_source=True)
    assert torch.equal(res.result.initial_latents, plain.result.initial_latents)
    assert np.allclose(res.source_frames, plain.source_frames, atol=1e-5)
    with pytest.raises(ValueError, match="target_kind"):
        control(animatediff, traj, prompt="x", channels=tiny_channels, steps=4, guidance=g, target_kind="sketch")


def test_control_takes_its_defaults_from_the_folder_the_pipeline_came_from(model_dir, tmp_path, tiny_channels, traj):
    import json
    import shutil

    from moft.models import load_pipeline, pipeline_defaults

    folder = tmp_path / "m"
    shutil.copytree(model_dir, folder)
    (folder / "moft.json").write_text(json.dumps({"guidance_scale": 3.0, "target": "drag",
                                                  "guidance": {"steps": [1, 2], "iterations": 1, "loss": "per_position"}}))
    pipe = load_pipeline(folder)
    assert pipeline_defaults(pipe)["guidance_scale"] == 3.0 and pipeline_defaults(tiny_channels) == {}
    res = control(pipe, traj, prompt="a red disk", channels=tiny_channels, steps=3)
    assert res.report["guidance_scale"] == 3.0 and res.report["guidance"]["loss"] == "per_position"
    assert res.report["target"]["source"] == "drag" and len(res.report["losses"]) == 1


def test_drag_control_runs_unchanged_on_modelscope(modelscope, traj):
    from moft.channels import fit_channels

    channels = fit_channels(modelscope, method="noise", scenes=1, seed=0)
    g = GuidanceConfig(steps=(1, 3), iterations=2, loss="per_position")
    res = control(modelscope, traj, prompt="a red disk", channels=channels, steps=4, guidance=g, target_kind="drag")
    assert res.frames.shape == (FRAMES, 32, 32, 3) and res.target.maps.shape[2] == len(channels.indices)
    losses = [r["loss"] for r in res.report["losses"]]
    assert len(losses) == 4 and np.isfinite(losses).all() and losses[1] < losses[0]
