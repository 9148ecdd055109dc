"""``moft info / extract / fit-channels / control`` end to end on saved tiny Wan and CogVideoX folders."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from moft.front.cli import app

from conftest import DIT_FRAMES, tiny_cogvideox, tiny_wan, tiny_wan_4x

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.slow]

runner = CliRunner()
BUILDERS = {"wan": tiny_wan, "wan_4x": tiny_wan_4x, "cogvideox": tiny_cogvideox}
LATENT = {"wan": (9, 16, 16), "wan_4x": (3, 8, 8), "cogvideox": (3, 8, 8)}  # (F', h, w) of 9 x 32 x 32 videos


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module", params=list(BUILDERS))
def dit_dir(request, tmp_path_factory):
    """A tiny DiT pipeline saved with save_pretrained, its sizes and defaults in moft.json."""
    path = tmp_path_factory.mktemp("dit") / request.param
    BUILDERS[request.param]().save_pretrained(path)
    (path / "moft.json").write_text(json.dumps({"prompt": "a red disk", "guidance_scale": 4.0,
                                                "frames": DIT_FRAMES, "height": 32, "width": 32}))
    return request.param, path


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_dit_commands_run_end_to_end(dit_dir, tmp_path):
    name, folder = dit_dir
    f, h, w = LATENT[name]

    r = run("info", "--model", folder)
    assert r.exit_code == 0, r.output
    assert ("wan" if name.startswith("wan") else "cogvideox") in r.stdout
    assert f"(1, {f}, " in r.stdout and f", {h // 2}, {w // 2})" in r.stdout  # tokens of patch 2

    channels = tmp_path / "ch.safetensors"
    r = run("fit-channels", "--model", folder, "--out", channels, "--method", "noise", "--scenes", 1,
            "--fraction", 0.1)
    assert r.exit_code == 0, r.output

    feats = tmp_path / "p.safetensors"
    r = run("extract", "--model", folder, "--prompt", "a red disk", "--out", feats, "--steps", 3,
            "--channels", channels)
    assert r.exit_code == 0, r.output
    assert load_file(str(feats))["moft"].shape[0] == f

    traj = tmp_path / "traj.json"
    traj.write_text(json.dumps({"version": 1, "frames": DIT_FRAMES, "regions": [
        {"mask": {"box": [0.25, 0.25, 0.75, 0.75]}, "direction": "left", "speed": 0.05}]}))
    video = tmp_path / "out.gif"
    for kind in ("curves", "drag"):
        r = run("control", traj, "--model", folder, "--out", video, "--channels", channels, "--steps", 3,
                "--guided-steps", "1:2", "--iterations", 2, "--loss", "per_position", "--target-kind", kind)
        assert r.exit_code == 0, r.output
        report = json.loads(video.with_suffix(".report.json").read_text())
        assert len(report["losses"]) == 2 and report["frames"] == DIT_FRAMES

    r = run("extract", "--model", folder, "--video", video, "--out", feats, "--steps", 3)
    assert r.exit_code == 0, r.output
    assert load_file(str(feats))["features"].shape[0] == f


def test_a_frame_count_the_vae_cannot_take_is_a_user_error(dit_dir, tmp_path):
    name, folder = dit_dir
    traj = tmp_path / "traj.json"
    traj.write_text(json.dumps({"version": 1, "frames": 8, "regions": [
        {"mask": {"box": [0.25, 0.25, 0.75, 0.75]}, "direction": "left"}]}))
    r = run("control", traj, "--model", folder, "--out", tmp_path / "o.gif", "--steps", 2)
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
