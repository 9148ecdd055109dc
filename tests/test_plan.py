"""One resolution of run settings, the control plan (every check before model work) and moft's own errors
at the three front doors (CLI, Python API, ``moft evaluate``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import moft
import moft.front.cli as cli
from moft.front.cli import app
from moft.front.control import ControlError, control, plan_control
from moft.method.sampler import SamplerError, sample
from moft.method.settings import OFFICIAL_CFG, GuidanceConfig, SettingsError, resolve_settings
from moft.models.record import ModelRecord

from conftest import FRAMES

pytestmark = pytest.mark.usefixtures("single_thread")
EXAMPLES = Path(__file__).parents[1] / "examples"
G = GuidanceConfig(steps=(1, 2), iterations=1)


# ---------------------------------------------------------------------------
# resolution: defaults -> model folder -> suite layers -> flags, each level over the one before
# ---------------------------------------------------------------------------

def test_each_level_wins_over_the_one_before():
    record = ModelRecord.from_dict({"guidance_scale": 4.0, "target": "drag", "prompt": "p", "site": "mid_block",
                                    "guidance": {"iterations": 4, "step_size": 0.15, "distance": "cosine"}})
    plain = resolve_settings()
    assert (plain.guidance, plain.guidance_scale, plain.target_kind, plain.prompt) == (
        GuidanceConfig(), OFFICIAL_CFG, "curves", "")
    folder = resolve_settings(record)
    assert (folder.guidance.iterations, folder.guidance.step_size, folder.guidance.site) == (4, 0.15, "mid_block")
    assert (folder.guidance_scale, folder.target_kind, folder.prompt) == (4.0, "drag", "p")
    suite = resolve_settings(record, {"iterations": 3, "guidance_scale": 5.0})
    assert (suite.guidance.iterations, suite.guidance.step_size, suite.guidance_scale) == (3, 0.15, 5.0)
    row = resolve_settings(record, {"iterations": 3, "guidance_scale": 5.0}, {"iterations": 1, "target_kind": "curves"})
    assert (row.guidance.iterations, row.guidance.distance, row.target_kind, row.guidance_scale) == (1, "cosine", "curves", 5.0)
    flag = resolve_settings(record, {"iterations": 3}, {"iterations": 1}, {"iterations": 7, "site": "up_blocks.1"})
    assert (flag.guidance.iterations, flag.guidance.site) == (7, "up_blocks.1")
    whole = resolve_settings(record, {"guidance_scale": 2.0}, guidance=GuidanceConfig(iterations=9))
    assert whole.guidance == GuidanceConfig(iterations=9) and whole.guidance_scale == 2.0


def test_a_bad_guidance_entry_in_moft_json_names_the_file_and_a_close_key():
    record = ModelRecord.from_dict({"guidance": {"stepsize": 0.1}}, source="m/moft.json")
    with pytest.raises(SettingsError, match=r"m/moft.json: guidance: stepsize is not a guidance setting \(did you "
                                            r"mean 'step_size'\?\)"):
        resolve_settings(record)


def test_the_cli_and_the_suite_schema_read_the_dataclass():
    from moft.eval.suite import SETTING_KEYS
    from moft.method.settings import GUIDANCE_FIELDS

    assert set(GUIDANCE_FIELDS) <= SETTING_KEYS
    assert "sgd (official)" in cli._guidance_help("optimizer") and "without a moft.json: sgd" in cli._guidance_help("optimizer")
    assert cli._guidance_help("steps").endswith("without a moft.json: 3:12 (default: see `moft info --model M`)")


# ---------------------------------------------------------------------------
# the Python API: moft's own one-line errors, before any sampling
# ---------------------------------------------------------------------------

@pytest.fixture
def no_sampling(monkeypatch):
    """Fail the test if any denoiser step runs (the checks must come first)."""
    import moft.method.sampler as sampler

    monkeypatch.setattr(sampler, "initial_noise", lambda *a, **k: pytest.fail("sampled before the check"))


@pytest.mark.parametrize("kwargs, text", [
    ({"steps": 1001}, "steps must be <= 1000 for this model's DDIMScheduler"),
    ({"steps": 100000}, "steps must be in 1..10000"),
    ({"seed": -1}, "seed must be in"),
    ({"latents": torch.zeros(1, FRAMES, 4, 8, 8)}, "init latents have shape"),
    ({"latents": torch.zeros(FRAMES, 4, 16, 16)}, "init latents have shape"),
    ({"num_frames": -1}, "num_frames must be >= 1"),
    ({"height": 33}, "multiples of 2"),
    ({"guidance": {"iterations": 2}}, "guidance must be a GuidanceConfig"),
    ({"target": "left"}, "target must be a Target"),
])
def test_sample_refuses_bad_arguments_in_one_line(animatediff, no_sampling, kwargs, text):
    with pytest.raises(SamplerError, match=text) as info:
        sample(animatediff, "a red disk", **kwargs)
    assert "\n" not in str(info.value)


def test_sample_refuses_a_prompt_that_is_not_a_string(animatediff, no_sampling):
    with pytest.raises(SamplerError, match="prompt must be a string, got int"):
        sample(animatediff, 3)


def test_latents_of_the_other_shipped_model_are_refused_before_sampling(monkeypatch):
    """moft-tiny's latents (8 latent frames) on moft-tiny-wan (whose VAE takes 4k+1 frames): refused before the
    first step (they used to run 25 steps and fail in the VAE)."""
    wan = moft.load_pipeline("moft-tiny-wan")
    tiny = moft.load_pipeline("moft-tiny")
    z = moft.initial_noise(tiny, num_frames=8, height=32, width=32, seed=0)  # (1, 8, C, 16, 16)
    traj = moft.load_trajectory(EXAMPLES / "object_left.json", default_frames=9)
    import moft.front.control as control_module

    monkeypatch.setattr(control_module, "sample", lambda *a, **k: pytest.fail("sampled before the check"))
    with pytest.raises(ControlError, match="another model's") as info:
        control(wan, traj, prompt="a red disk", channels=moft.default_channels("moft-tiny-wan"), init_latents=z)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kwargs, error, text", [
    ({"prompt": None}, ControlError, "prompt must be a string"),
    ({"trajectory": {"regions": []}}, ControlError, "trajectory must be a Trajectory"),
    ({"steps": 1001}, SamplerError, "steps must be <= 1000"),
    ({"reference": np.zeros((3, 32, 32))}, ControlError, "the reference video has shape"),
    ({"guidance": GuidanceConfig(steps=(30, 40))}, ControlError, "guided steps 30:40 run no step"),
])
def test_control_refuses_bad_arguments_before_any_model_work(animatediff, tiny_channels, monkeypatch, kwargs, error,
                                                             text):
    import moft.front.control as control_module

    monkeypatch.setattr(control_module, "sample", lambda *a, **k: pytest.fail("sampled before the check"))
    traj = moft.load_trajectory(EXAMPLES / "object_left.json", default_frames=FRAMES)
    args = dict({"trajectory": traj, "prompt": "a red disk", "channels": tiny_channels, "steps": 4, "guidance": G},
                **kwargs)
    with pytest.raises(error, match=text) as info:
        control(animatediff, args.pop("trajectory"), **args)
    assert "\n" not in str(info.value)


def test_a_trajectory_of_another_frame_count_is_refused_with_what_to_do(animatediff, tiny_channels):
    traj = moft.load_trajectory(EXAMPLES / "object_left.json", default_frames=16)
    with pytest.raises(ControlError, match="drop `frames` from the trajectory, or pick a 16-frame model"):
        plan_control(animatediff, traj, prompt="x", channels=tiny_channels)


def test_the_plan_resolves_the_same_settings_control_runs_with(animatediff, tiny_channels):
    traj = moft.load_trajectory(EXAMPLES / "object_left.json", default_frames=FRAMES)
    plan = plan_control(animatediff, traj, prompt="x", channels=tiny_channels, steps=3, guidance=G, guidance_scale=2.0)
    res = control(animatediff, traj, prompt="x", channels=tiny_channels, steps=3, guidance=G, guidance_scale=2.0)
    assert plan.settings.guidance_scale == res.report["guidance_scale"] == 2.0 and plan.size == (FRAMES, 32, 32)
    assert plan.settings.target_kind == res.report["target"]["source"].replace("trajectory", "curves")


# ---------------------------------------------------------------------------
# the command line: one line, exit 2, nothing written, before the model loads where it can
# ---------------------------------------------------------------------------

def _run(tmp_path, monkeypatch, args, load_ok=False):
    if not load_ok:
        monkeypatch.setattr(cli, "_load", lambda model: pytest.fail("loaded the model before the check"))
    before = set(tmp_path.rglob("*"))
    res = CliRunner().invoke(app, [str(a) for a in args])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert set(tmp_path.rglob("*")) == before  # nothing written
    return lines[0]


def test_cli_a_16_frame_trajectory_on_the_8_frame_model_is_refused_before_loading(tmp_path, monkeypatch):
    traj = tmp_path / "t16.json"
    doc = json.loads((EXAMPLES / "object_left.json").read_text())
    traj.write_text(json.dumps(dict(doc, frames=16)))
    line = _run(tmp_path, monkeypatch, ["control", traj, "--out", tmp_path / "o.gif"])
    assert "16 frames" in line and "drop `frames`" in line and "pick a 16-frame model" in line


def test_cli_steps_out_of_range_is_refused_before_loading(tmp_path, monkeypatch):
    line = _run(tmp_path, monkeypatch, ["control", EXAMPLES / "object_left.json", "--out", tmp_path / "o.gif",
                                        "--steps", 100000])
    assert "steps must be in 1..10000" in line


def test_cli_a_missing_model_without_channels_says_no_such_model(tmp_path, monkeypatch):
    for command in (["control", EXAMPLES / "object_left.json", "--out", tmp_path / "o.gif"],
                    ["evaluate", Path(__file__).parents[1] / "benchmarks" / "smoke.json", "--out", tmp_path / "r.json"]):
        line = _run(tmp_path, monkeypatch, command + ["--model", tmp_path / "nope"])
        assert "no such model" in line and "fit-channels" not in line


def test_cli_latents_of_the_other_shipped_model_are_refused_before_sampling(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    import moft.front.control as control_module

    tiny = moft.load_pipeline("moft-tiny")
    z = moft.initial_noise(tiny, num_frames=8, height=32, width=32, seed=0)
    inputs = tmp_path / "in"
    inputs.mkdir()
    save_file({"latents": z.contiguous()}, str(inputs / "tiny.latents.safetensors"))
    monkeypatch.setattr(control_module, "sample", lambda *a, **k: pytest.fail("sampled before the check"))
    line = _run(tmp_path, monkeypatch, ["control", EXAMPLES / "object_left.json", "--model", "moft-tiny-wan",
                                        "--out", tmp_path / "o.gif", "--init-latents", inputs / "tiny.latents.safetensors"],
                load_ok=True)
    assert "tiny.latents.safetensors" in line and "another model's" in line


def test_cli_evaluate_refuses_another_models_channel_file(tmp_path, monkeypatch):
    """moft-tiny-wan's channels on moft-tiny: one line, exit 2, no report and no work folder (it used to run
    with exit 0 and a wrong table, or end in an IndexError)."""
    import moft.eval.runner as runner

    monkeypatch.setattr(runner, "run_item", lambda *a, **k: pytest.fail("an item ran"))
    other = Path(moft.__file__).parent / "models" / "shipped" / "moft-tiny-wan" / "motion_channels.safetensors"
    line = _run(tmp_path, monkeypatch, ["evaluate", Path(__file__).parents[1] / "benchmarks" / "smoke.json",
                                        "--out", tmp_path / "r.json", "--channels", other, "--threads", 1], load_ok=True)
    assert "channel file was fitted on a wan model" in line


def test_a_models_cut_drag_default_applies_to_drags_only_and_a_reference_cannot_be_cut_and_dragged():
    """moft-tiny's moft.json chose a gradient-free cut-and-drag start on trajectory drags (issue 26); a reference clip
    or a point loss must still be guided by gradients (they used to run unguided), and asking for cut-drag with a
    reference is one line before any model work."""
    from moft.front.control import ControlError, plan_settings
    from moft.models.pipeline import model_record

    record = model_record("moft-tiny")
    assert record.guidance["method"] == "cut-drag"  # the premise: the shipped default is gradient-free
    drag = plan_settings(record).guidance
    assert drag.method == "cut-drag" and drag.keep == "latents" and not drag.iterates
    ref = plan_settings(record, drags=False).guidance
    assert ref.method == "gradient" and ref.start == "noise" and ref.keep == "off" and ref.iterates
    assert ref.optimizer == drag.optimizer == "adam"  # the rest of the folder's guidance still applies
    points = plan_settings(record, flags={"points": "paper"}).guidance
    assert points.method == "gradient" and points.iterates
    kept = plan_settings(record, flags={"points": "paper", "keep": "latents"}).guidance
    assert kept.keep == "latents" and kept.method == "gradient"  # a lever the caller gives is kept
    plain = plan_settings(record, flags={"start": "noise"}).guidance  # the proxy-only levers go with the proxy start
    assert plain.method == "gradient" and plain.release is None and plain.keep == "latents" and plain.iterates
    with pytest.raises(ControlError, match="^method cut-drag drags the trajectory's regions"):
        plan_settings(record, drags=False, flags={"method": "cut-drag", "start": "proxy"})


def test_step_indices_nobody_set_keep_their_share_of_a_schedule_of_another_length():
    """The folders' step indices were chosen on 25-step runs: moft-tiny-wan's track default guides from step 16 of 25
    and releases at 24. On 10 steps it must still start at about 64% of the schedule (it used to stop the run: step 16
    of a 10-step schedule), on 50 at the same share; indices the caller gives, or a whole GuidanceConfig, are literal."""
    from moft.front.control import plan_settings
    from moft.method.settings import track_settings
    from moft.models.pipeline import model_record

    record = model_record("moft-tiny-wan")
    tracks = track_settings(record)
    assert tuple(tracks["steps"]) == (16, 17) and tracks["release"] == 24  # the premise
    for steps in (10, 25, 50, 100):
        g = plan_settings(record, steps=steps, tracks=True).guidance  # what `moft control TRACKS --steps N` resolves
        share = 16 / 25
        assert abs(g.steps[0] / steps - share) <= 0.5 / steps and g.steps[1] > g.steps[0]
        assert abs(g.release / steps - 24 / 25) <= 0.5 / steps
    assert plan_settings(record, steps=25).guidance.steps == tuple(record.guidance["steps"])  # 25: as written
    given = plan_settings(record, steps=10, flags={"steps": (2, 5), "release": 8}).guidance
    assert (given.steps, given.release) == ((2, 5), 8)
    assert plan_settings(record, steps=50, guidance=GuidanceConfig(steps=(3, 12))).guidance.steps == (3, 12)
    with pytest.raises(ControlError, match="run no step of the 10-step schedule"):
        plan_settings(record, steps=10, flags={"steps": (16, 17)})

    # a folder whose trajectories get curve targets still drags tracks with the levers its tracks entry chose
    curves = ModelRecord(target="curves", tracks={"method": "cut-drag", "start": "proxy", "release": 24})
    g = plan_settings(curves, tracks=True).guidance
    assert (g.method, g.start, g.release) == ("cut-drag", "proxy", 24)


def test_point_tracks_drag_their_objects_in_python_as_on_the_command_line(animatediff, tiny_channels):
    """A ``Tracks`` (what every track file is read into) without ``guidance`` drags the object under each point
    (``point_region="segment"``), the background not kept, as ``moft control TRACKS.json`` does; a caller's
    ``guidance`` is used as given."""
    from moft.front.control import plan_control
    from moft.method.settings import TRACK_SETTINGS, track_settings
    from moft.io.tracks import Tracks
    from moft.method.settings import GuidanceConfig

    path = np.stack([np.linspace(8, 20, 8), np.full(8, 16.0)], axis=1)  # (F, 2) px
    tracks = Tracks(path[None], np.ones((1, 8), bool), (32, 32))
    plan = plan_control(animatediff, tracks, prompt="a red disk", channels=tiny_channels, steps=25)
    assert TRACK_SETTINGS == {"point_region": "segment"} == track_settings(None)  # a folder without "tracks"
    assert plan.guidance.point_region == "segment" and plan.guidance.keep == "off" and plan.guidance.points == "off"
    assert plan.points is None and plan.trajectory.regions[0].tracks is not None  # one point region, no point loss
    given = plan_control(animatediff, tracks, prompt="a red disk", channels=tiny_channels, steps=3,
                         guidance=GuidanceConfig(steps=(0, 2)))
    assert given.guidance.points == "off"


@pytest.mark.parametrize("layer, from_trajectory, drag_target, drags_image", [
    ({"target_kind": "drag"}, True, True, True),  # a gradient drag: the image is its target's proxy
    ({"target_kind": "drag"}, False, False, False),  # a reference clip or a ready target: nothing dragged
    ({"target_kind": "curves"}, True, False, False),  # curves come from the trajectory's numbers, not a proxy
    ({"target_kind": "drag", "points": "dift"}, True, False, False),  # the point loss alone: no target
    ({"target_kind": "drag", "iterations": 0}, True, False, False),  # no gradient steps: no target to aim at
    ({"method": "cut-drag", "start": "proxy", "release": 20}, True, False, True),  # the cut-and-drag start
    ({"target_kind": "curves", "start": "proxy", "release": 12}, True, False, True),  # a proxy start under curves
])
def test_one_rule_says_what_a_run_drags(layer, from_trajectory, drag_target, drags_image):
    """The rule ControlPlan and the suite runner both read (they used to write it twice): a drag target needs
    iterations, a trajectory and kind drag; an image-to-video run drags its image for that target or a proxy start."""
    run = resolve_settings(None, layer)
    assert run.drag_target(from_trajectory=from_trajectory) is drag_target
    assert run.drags_image(from_trajectory=from_trajectory) is drags_image
