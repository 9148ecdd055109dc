"""``moft.front.control``: trajectory, reference and ready targets; diagnostics in the report."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import moft
from moft.front.control import control
from moft.method.sampler import GuidanceConfig
from moft.io.trajectory import load_trajectory

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
    assert r["guidance"]["weight"] == 6.0 and "weight" not in r and r["guidance"]["steps"] == (1, 3)
    assert len(r["losses"]) == 2 and r["channels_digest"] == tiny_channels.digest()
    assert r["target"]["source"] == "trajectory"


def test_control_from_a_reference_video(animatediff, tiny_channels, traj):
    from moft.io.synthetic import make_clip

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
    assert res.report["guidance"]["weight"] == 8.0 and len(res.report["losses"][0]["regions"]) == 2


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

    from moft.models.loading import load_pipeline, pipeline_defaults

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
    from moft.method.channels import fit_channels

    channels = fit_channels(modelscope, method="noise", scenes=1, seed=0)
    g = GuidanceConfig(steps=(1, 3), iterations=2, loss="per_position")
    res = control(modelscope, traj, prompt="a red disk", channels=channels, steps=4, guidance=g, target_kind="drag")
    assert res.frames.shape == (FRAMES, 32, 32, 3) and res.target.maps.shape[2] == len(channels.indices)
    losses = [r["loss"] for r in res.report["losses"]]
    assert len(losses) == 4 and np.isfinite(losses).all() and losses[1] < losses[0]


@pytest.mark.parametrize("settings, text", [
    ({"steps": 0}, "steps must be in 1..10000"), ({"steps": -1}, "steps must be in 1..10000"),
    ({"steps": 100000}, "steps must be in 1..10000"),
    ({"seed": 2**70}, "seed must be in 0..9223372036854775807"), ({"seed": -1}, "seed"),
    ({"guidance_scale": float("nan")}, "guidance_scale must be a finite"), ({"gain": 1e30}, "gain must be <= 100"),
    ({"gain": 0.0}, "gain must be > 0"), ({"gain": float("inf")}, "gain must be a finite"),
    ({"steps": 25, "guidance": GuidanceConfig(steps=(30, 40))}, "guided steps 30:40 run no step of the 25-step"),
    ({"steps": 3, "guidance": GuidanceConfig(steps=(3, 12))}, "guided steps 3:12 run no step of the 3-step"),
])
def test_settings_that_cannot_work_are_one_line_control_errors(settings, text):
    from moft.front.control import ControlError, check_settings

    with pytest.raises(ControlError, match=text) as info:
        check_settings(**settings)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("fields, text", [
    ({"weight": float("nan")}, "weight must be a finite number > 0 or null"), ({"step_size": 0.0}, "step_size must be > 0"),
    ({"iterations": -1}, "iterations must be an integer >= 0"), ({"iterations": 1.5}, "iterations must be an integer"),
    ({"steps": (5, 2)}, "steps must be"), ({"shared_kv": "yes"}, "shared_kv must be true or false"),
])
def test_guidance_fields_are_checked_by_the_config_itself(fields, text):
    from moft.method.sampler import SamplerError

    with pytest.raises(SamplerError, match=text) as info:
        GuidanceConfig(**fields)
    assert "\n" not in str(info.value)


def test_settings_that_can_work_pass():
    from moft.front.control import check_settings

    check_settings(steps=4, guidance=GuidanceConfig(steps=(3, 12)))  # guides step 3: the overlap is enough
    check_settings(steps=3, guidance=GuidanceConfig(steps=(3, 12), iterations=0))  # unguided: no schedule needed
    check_settings(seed=2**63 - 1, guidance_scale=0.0, gain=100.0)


def test_control_checks_numbers_before_sampling(animatediff, tiny_channels, traj, monkeypatch):
    control_module = __import__("importlib").import_module("moft.front.control")
    from moft.front.control import ControlError

    monkeypatch.setattr(control_module, "sample", lambda *a, **k: pytest.fail("sampled before the check"))
    with pytest.raises(ControlError, match="guidance_scale"):
        control(animatediff, traj, prompt="x", channels=tiny_channels, steps=4, guidance=G,
                guidance_scale=float("nan"))


@pytest.mark.parametrize("shape, fill, text", [
    ((1, FRAMES, 3, 16, 16), 0.0, "shape"),   # another latent channel count
    ((1, FRAMES, 4, 8, 8), 0.0, "shape"),     # another grid
    ((FRAMES, 4, 16, 16), 0.0, "shape"),      # no batch axis
    ((1, FRAMES, 4, 16, 16), float("nan"), "NaN"),
])
def test_init_latents_of_another_shape_or_not_finite_are_refused(animatediff, tiny_channels, traj, shape, fill, text):
    from moft.front.control import ControlError

    with pytest.raises(ControlError, match=text):
        control(animatediff, traj, prompt="x", channels=tiny_channels, steps=4, guidance=G,
                init_latents=torch.full(shape, fill))


def _channels_with(ch, horizontal, vertical=None):
    from dataclasses import replace

    return replace(ch, horizontal=torch.as_tensor(horizontal), vertical=torch.as_tensor(
        vertical if vertical is not None else horizontal))


@pytest.mark.parametrize("horizontal, vertical, text", [
    ([0, 64, 1], None, "lie in 0..63"), ([0, -1, 2], None, "lie in 0..63"), ([], None, "non-empty"),
    ([[0, 1], [2, 3]], None, "non-empty list"), ([0, 1, 2], [3, 4], "3 horizontal but 2 vertical"),
])
def test_channel_indices_are_checked_against_the_model(animatediff, tiny_channels, traj, horizontal, vertical, text):
    from moft.method.channels import ChannelsError

    bad = _channels_with(tiny_channels, horizontal, vertical)
    with pytest.raises(ChannelsError, match=text):
        control(animatediff, traj, prompt="x", channels=bad, steps=4, guidance=G)


def test_channels_of_another_width_are_refused(animatediff, tiny_channels, traj):
    from dataclasses import replace

    from moft.method.channels import ChannelsError

    narrow = replace(tiny_channels, response=tiny_channels.response[:32], response_r2=tiny_channels.response_r2[:32])
    narrow = _channels_with(narrow, [0, 1, 2])
    with pytest.raises(ChannelsError, match="32-channel features"):
        control(animatediff, traj, prompt="x", channels=narrow, steps=4, guidance=G)


def test_progress_reports_every_long_phase_of_a_drag_run(animatediff, tiny_channels, traj):
    calls = []
    g = GuidanceConfig(steps=(1, 3), iterations=1, loss="per_position")
    control(animatediff, traj, prompt="a red disk", channels=tiny_channels, steps=4, guidance=g, target_kind="drag",
            progress=lambda done, total, phase: calls.append((phase, done, total)))
    phases = [p for p, _, _ in calls]
    assert sorted(set(phases), key=phases.index) == ["source", "invert", "guide"]  # in this order
    for phase in ("source", "invert", "guide"):
        done = [(d, t) for p, d, t in calls if p == phase]
        assert done[-1][0] == done[-1][1]  # each phase reaches its total
    assert [d for p, d, _ in calls if p == "guide"] == [1, 2, 3, 4]


def test_zero_iterations_builds_no_target(animatediff, tiny_channels, traj, monkeypatch):
    control_module = __import__("importlib").import_module("moft.front.control")

    monkeypatch.setattr(control_module, "build_target", lambda *a, **k: pytest.fail("built a target for an unguided run"))
    g = GuidanceConfig(iterations=0, loss="per_position")
    res = control(animatediff, traj, prompt="a red disk", channels=tiny_channels, steps=3, guidance=g,
                  target_kind="drag", seed=2)
    plain = control(animatediff, traj, prompt="a red disk", channels=tiny_channels, steps=3, guidance=g,
                    target_kind="curves", seed=2)
    assert res.target is None and res.report["target"] is None and res.report["losses"] == []
    assert np.array_equal(res.frames, plain.frames)  # both are the plain sample of seed 2


def test_a_saved_target_of_another_run_size_is_refused(animatediff, tiny_channels, traj):
    from moft.front.control import ControlError

    a = control(animatediff, traj, prompt="a red disk", channels=tiny_channels, steps=4, guidance=G)
    with pytest.raises(ControlError, match="target"):
        control(animatediff, None, prompt="x", target=a.target, steps=4, guidance=G,
                init_latents=torch.randn(1, FRAMES // 2, 4, 16, 16))
