"""The ``moft`` command line end to end on a tiny saved model: outputs, one-line errors, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from moft.cli import app

runner = CliRunner()
EXAMPLES = __import__("pathlib").Path(__file__).parents[1] / "examples"


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, text: str):
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert text in lines[0]
    assert "Traceback" not in result.output


def test_info_lists_adapter_and_site_shape(model_dir):
    r = run("info", "--model", model_dir)
    assert r.exit_code == 0, r.output
    assert "UNetMotionModel" in r.stdout and "animatediff" in r.stdout
    assert "(1, 8, 64, 16, 16)" in r.stdout


def test_extract_prompt_writes_features_and_figure(model_dir, tmp_path):
    out, fig = tmp_path / "f.safetensors", tmp_path / "f.png"
    r = run("extract", "--model", model_dir, "--prompt", "a red disk moving left", "--out", out, "--steps", 3,
            "--timestep", 500, "--figure", fig)
    assert r.exit_code == 0, r.output
    t = load_file(str(out))
    assert tuple(t["features"].shape) == (8, 64, 16, 16)
    assert t["moft"].shape[1] == len(t["channels"])
    assert fig.read_bytes()[:4] == b"\x89PNG"


def test_extract_video_inverts_a_gif(model_dir, tmp_path):
    import numpy as np

    from moft.synthetic import make_clip
    from moft.video import write_video

    clip = make_clip(np.random.default_rng(0), kind="object")
    video = write_video(tmp_path / "v.gif", clip.frames)
    out = tmp_path / "v.safetensors"
    r = run("extract", "--model", model_dir, "--video", video, "--out", out, "--steps", 4)
    assert r.exit_code == 0, r.output
    assert tuple(load_file(str(out))["features"].shape) == (8, 64, 16, 16)


def test_fit_channels_writes_file_and_metadata(model_dir, tmp_path):
    out = tmp_path / "ch.safetensors"
    r = run("fit-channels", "--model", model_dir, "--out", out, "--scenes", 1, "--method", "noise")
    assert r.exit_code == 0, r.output
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["k"] == 3 and meta["site"] == "up_blocks.1"


def test_fit_channels_separation_rank_is_recorded(model_dir, tmp_path):
    out = tmp_path / "ch.safetensors"
    r = run("fit-channels", "--model", model_dir, "--out", out, "--scenes", 1, "--method", "noise",
            "--rank", "separation")
    assert r.exit_code == 0, r.output
    assert json.loads(out.with_suffix(".json").read_text())["rank"] == "separation"


def test_fit_channels_unknown_rank_is_one_line_and_no_file(model_dir, tmp_path):
    out = tmp_path / "ch.safetensors"
    r = run("fit-channels", "--model", model_dir, "--out", out, "--scenes", 1, "--rank", "vibes")
    assert r.exit_code == 2 and "rank" in r.output and "Traceback" not in r.output
    assert not out.exists()


def test_control_writes_video_report_latents_and_source(model_dir, tmp_path):
    out = tmp_path / "c.gif"
    r = run("control", EXAMPLES / "object_left.json", "--model", model_dir, "--out", out, "--steps", 4,
            "--guided-steps", "1:3", "--save-source", "--save-target", tmp_path / "t.safetensors")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "c.report.json").read_text())
    assert report["prompt"] == "a red disk"  # from the model folder's moft.json
    assert report["guidance_scale"] == 4.0
    assert len(report["losses"]) == 2 * 2 and report["channels_digest"]
    for name in ("c.gif", "c.source.gif", "c.latents.safetensors", "t.safetensors"):
        assert (tmp_path / name).stat().st_size > 0


def test_control_init_latents_and_target_reproduce_a_run(model_dir, tmp_path):
    a, b = tmp_path / "a.gif", tmp_path / "b.gif"
    r1 = run("control", EXAMPLES / "object_left.json", "--model", model_dir, "--out", a, "--steps", 3,
             "--guided-steps", "1:2", "--save-target", tmp_path / "t.safetensors", "--seed", 11)
    r2 = run("control", EXAMPLES / "object_left.json", "--model", model_dir, "--out", b, "--steps", 3,
             "--guided-steps", "1:2", "--target", tmp_path / "t.safetensors",
             "--init-latents", tmp_path / "a.latents.safetensors", "--seed", 999)
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    assert a.read_bytes() == b.read_bytes()


def test_control_with_reference_video(model_dir, tmp_path):
    import numpy as np

    from moft.synthetic import make_clip
    from moft.video import write_video

    ref = write_video(tmp_path / "ref.gif", make_clip(np.random.default_rng(1), kind="pan", direction="left").frames)
    out = tmp_path / "r.gif"
    r = run("control", EXAMPLES / "pan_right.json", "--model", model_dir, "--out", out, "--steps", 3,
            "--guided-steps", "1:2", "--reference", ref)
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "r.report.json").read_text())["target"]["source"] == "reference"


def test_control_with_a_drag_target(model_dir, tmp_path):
    out = tmp_path / "d.gif"
    r = run("control", EXAMPLES / "object_left.json", "--model", model_dir, "--out", out, "--steps", 3,
            "--guided-steps", "1:2", "--target-kind", "drag", "--loss", "per_position", "--save-proxy")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "d.report.json").read_text())["target"]["source"] == "drag"
    assert (tmp_path / "d.proxy.gif").stat().st_size > 0
    curves = run("control", EXAMPLES / "object_left.json", "--model", model_dir, "--out", tmp_path / "c.gif",
                 "--target-kind", "curves", "--save-proxy")
    assert curves.exit_code == 2 and "--save-proxy" in curves.output and not (tmp_path / "c.gif").exists()
    bad = run("control", EXAMPLES / "object_left.json", "--model", model_dir, "--out", tmp_path / "e.gif",
              "--target-kind", "sketch")
    assert bad.exit_code == 2 and "--target-kind" in bad.output and not (tmp_path / "e.gif").exists()


@pytest.mark.parametrize("args, text", [
    (["extract", "--model", "/no/such/folder", "--prompt", "x", "--out", "o.safetensors"], "no such model folder"),
    (["extract", "--model", "{model}", "--prompt", "x", "--out", "o.txt"], "must end in .safetensors"),
    (["extract", "--model", "{model}", "--out", "o.safetensors"], "exactly one of --prompt or --video"),
    (["extract", "--model", "{model}", "--video", "missing.gif", "--out", "o.safetensors"], "missing.gif"),
    (["extract", "--model", "{model}", "--prompt", "x", "--out", "o.safetensors", "--channels", "{bad}"],
     "not a moft channel file"),
    (["control", "{traj}", "--model", "{model}", "--out", "o.gif", "--grad-mask", "sometimes"], "grad_mask"),
    (["control", "{traj}", "--model", "{model}", "--out", "o.gif", "--guided-steps", "3-12"], "--guided-steps"),
])
def test_bad_input_is_one_line_and_exit_2(model_dir, tmp_path, monkeypatch, args, text):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.safetensors"
    bad.write_text("not a tensor file")
    subs = {"{model}": str(model_dir), "{bad}": str(bad), "{traj}": str(EXAMPLES / "object_left.json")}
    r = run(*[subs.get(a, a) for a in args])
    assert_user_error(r, text)
    assert not (tmp_path / "o.safetensors").exists() and not (tmp_path / "o.gif").exists()


def test_channel_file_of_another_width_is_rejected(model_dir, tmp_path):
    import torch

    from moft.channels import MotionChannels

    wide = MotionChannels(torch.arange(3), torch.arange(3), {"horizontal": torch.zeros(1280), "vertical": torch.zeros(1280)},
                          torch.zeros(1280, 2), torch.zeros(1280), meta={"site": "up_blocks.1"})
    wide.save(tmp_path / "wide.safetensors")
    r = run("extract", "--model", model_dir, "--prompt", "a red disk", "--steps", 2, "--out", tmp_path / "o.safetensors",
            "--channels", tmp_path / "wide.safetensors")
    assert_user_error(r, "1280")
    assert not (tmp_path / "o.safetensors").exists()


@pytest.mark.parametrize("doc, field", [
    ("{not json", "not valid JSON"),
    ('{"version": 1, "regions": [{"mask": {"circle": [0.5, 0.5, 0]}, "direction": "left"}]}',
     "regions[0].mask.circle"),
    ('{"version": 1, "regions": [{"mask": "all", "direction": "left", "colour": 1}]}', "unknown key"),
    ('{"version": 1, "frames": 16, "regions": [{"mask": "all", "direction": "left"}]}', "8-frame"),
    ('{"version": 1, "regions": [{"mask": {"box": [0.5, 0.5, 0.52, 0.52]}, "direction": "left"}]}',
     "covers no pixel"),
])
def test_malformed_trajectory_exits_2_without_output(model_dir, tmp_path, doc, field):
    traj = tmp_path / "t.json"
    traj.write_text(doc)
    r = run("control", traj, "--model", model_dir, "--out", tmp_path / "o.gif")
    assert_user_error(r, field)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json"]


def test_console_script_exit_code_and_single_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "moft.cli", "info", "--model", str(tmp_path / "nothing")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "no such model folder" in lines[0]
    assert "Traceback" not in proc.stderr


def test_evaluate_smoke_suite_writes_report_table_and_figure(model_dir, tmp_path):
    suite = json.loads((EXAMPLES.parent / "benchmarks" / "smoke.json").read_text())
    suite["steps"] = 3
    suite["settings"] = [dict(s, steps=[1, 2]) for s in suite["settings"]]
    path = tmp_path / "smoke.json"
    path.write_text(json.dumps(suite))
    out = tmp_path / "report.json"
    r = run("evaluate", path, "--model", model_dir, "--out", out)
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    assert [t["setting"] for t in report["table"]] == ["unguided"] + [s["name"] for s in suite["settings"]]
    assert len(report["rows"]) == len(suite["requests"]) * (1 + len(suite["settings"]))
    assert out.with_suffix(".md").read_text().startswith("## smoke")
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    again = run("evaluate", path, "--model", model_dir, "--out", out)  # resumes: nothing is redone
    assert again.exit_code == 0 and json.loads(out.read_text())["rows"] == report["rows"]


def test_evaluate_rejects_a_bad_suite(model_dir, tmp_path):
    bad = tmp_path / "s.json"
    bad.write_text('{"prompts": []}')
    assert_user_error(run("evaluate", bad, "--model", model_dir, "--out", tmp_path / "r.json"), "prompts")


def test_evaluate_shards_merge_into_one_report(model_dir, tmp_path):
    suite = json.loads((EXAMPLES.parent / "benchmarks" / "smoke.json").read_text())
    suite.update(steps=2, requests=suite["requests"][:1], settings=[dict(suite["settings"][0], steps=[1, 2])])
    path = tmp_path / "s.json"
    path.write_text(json.dumps(suite))
    out = tmp_path / "r.json"
    for k in ("1/2", "0/2"):
        r = run("evaluate", path, "--model", model_dir, "--out", out, "--shard", k)
        assert r.exit_code == 0, r.output
    assert len(json.loads(out.read_text())["rows"]) == 2
    assert_user_error(run("evaluate", path, "--model", model_dir, "--out", out, "--shard", "2/2"), "--shard")


@pytest.mark.slow
def test_evaluate_under_torchrun_splits_items_between_two_cpu_processes(model_dir, tmp_path):
    """Two processes (gloo on CPU) share the items and give the same rows as one process."""
    import shutil

    suite = json.loads((EXAMPLES.parent / "benchmarks" / "smoke.json").read_text())
    suite.update(steps=2, settings=[dict(suite["settings"][0], steps=[1, 2])])
    path = tmp_path / "s.json"
    path.write_text(json.dumps(suite))
    torchrun = shutil.which("torchrun") or pytest.skip("torchrun not on PATH")
    proc = subprocess.run([torchrun, "--nproc_per_node", "2", "-m", "moft.cli", "evaluate", str(path), "--model",
                           str(model_dir), "--out", str(tmp_path / "two.json")], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "[0/2]" in proc.stdout + proc.stderr and "[1/2]" in proc.stdout + proc.stderr
    r = run("evaluate", path, "--model", model_dir, "--out", tmp_path / "one.json")
    assert r.exit_code == 0, r.output
    two, one = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("two", "one"))
    assert [row["id"] for row in two["rows"]] == [row["id"] for row in one["rows"]]
    assert two["table"] == one["table"]
