"""What a new user sees on the command line: --version, the defaults in force, --preview, the outcome line,
one weight in the report, the report's full path, extract --save-video."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from moft.front.cli import app

runner = CliRunner()
EXAMPLES = __import__("pathlib").Path(__file__).parents[1] / "examples"


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_version():
    from moft import __version__

    r = run("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"moft {__version__}"


def test_info_lists_the_control_defaults_in_force(model_dir):
    r = run("info", "--model", model_dir)  # its moft.json sets prompt and CFG; the rest is the official settings
    assert r.exit_code == 0, r.output
    assert "control defaults" in r.stdout
    assert "  CFG           4\n" in r.stdout and "  prompt        'a red disk'" in r.stdout
    assert "  target        curves" in r.stdout and "  optimiser     sgd, 2 iterations per guided step, step size 0.5" in r.stdout
    assert "vocabulary" in r.stdout and " disk " in r.stdout


def test_info_says_what_a_track_file_runs_from_the_folders_tracks_entry(model_dir):
    """Without a ``"tracks"`` entry a track file drags each point's object with the folder's drag levers (here none:
    gradient guidance); with one, its fields (a cut-and-drag released at 24) are what ``info`` names."""
    from pathlib import Path

    r = run("info", "--model", model_dir)
    assert "  point tracks  each point drags the object under it: gradient guidance" in r.stdout, r.output
    record = Path(model_dir) / "moft.json"
    data = json.loads(record.read_text())
    record.write_text(json.dumps(dict(data, tracks={"method": "cut-drag", "start": "proxy", "release": 24,
                                                    "point_region": "disk"})))
    try:
        r = run("info", "--model", model_dir)
    finally:
        record.write_text(json.dumps(data))
    assert "  point tracks  each point drags its disk: cut-and-drag, no gradients; from the drag proxy at step 3, " \
           "released at step 24 (--points paper: Eq. 9)" in r.stdout, r.output


def test_info_says_how_a_reference_clip_is_copied():
    """moft-tiny copies a clip by its MOFT target (gradient guidance); the I2V organism's moft.json says
    ``"transfer": "drag"``: a clip is measured and dragged with the drag levers, which then name reference clips."""
    tiny, i2v = (run("info", "--model", m).stdout for m in ("moft-tiny", "moft-tiny-wan-i2v"))
    assert "  reference     a clip's motion copied by its inverted MOFT as the target (transfer target)" in tiny
    assert "(drags; a reference clip or points: gradient guidance, the lines below)" in tiny
    assert "  reference     a clip's motion measured per region and dragged (transfer drag)" in i2v
    assert "(drags and reference clips; points: gradient guidance, the lines below)" in i2v


def test_help_points_to_info_and_says_sampling_steps_and_what_right_means():
    import typer

    command = typer.main.get_command(app).commands["control"]
    assert run("control", "--help").exit_code == 0
    text = " ".join(getattr(p, "help", "") or "" for p in command.params)
    assert "see `moft info --model M`" in text and "moft.json, else" not in text
    assert "sampling steps" in text and "DDIM steps" not in text
    assert "content moving right" in text


def test_preview_writes_only_the_preview_and_says_what_it_found(model_dir, tmp_path):
    out = tmp_path / "sub" / "left.gif"
    out.parent.mkdir()
    r = run("control", EXAMPLES / "object_left.json", "--model", model_dir, "--out", out, "--steps", 3,
            "--guided-steps", "1:3", "--preview")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.parent.iterdir()) == ["left.preview.png"]
    assert (out.parent / "left.preview.png").read_bytes()[:4] == b"\x89PNG"
    assert "region 0:" in r.output or "warning: regions[0]" in r.output


def test_a_run_reports_its_outcome_one_weight_and_the_reports_full_path(model_dir, tmp_path):
    out = tmp_path / "sub" / "left.gif"
    out.parent.mkdir()
    r = run("control", EXAMPLES / "object_left.json", "--model", model_dir, "--out", out, "--steps", 4,
            "--guided-steps", "1:3", "--save-source")
    assert r.exit_code == 0, r.output
    report = json.loads((out.parent / "left.report.json").read_text())
    assert "weight" not in report and report["guidance"]["weight"] == 6.0
    (entry,) = report["outcome"]["regions"]
    assert entry["requested_px"] == [-0.04 * 7 * 32, 0.0] or np.allclose(entry["requested_px"], [-8.96, 0.0])
    assert f"and {out.parent / 'left.report.json'} (" in r.stdout
    assert r.stdout.strip().splitlines()[-1].startswith("region 0: ")


def test_extract_saves_the_video_it_analysed(model_dir, tmp_path):
    from moft.io.video import read_video

    out, video = tmp_path / "f.safetensors", tmp_path / "f.gif"
    r = run("extract", "--model", model_dir, "--prompt", "a red disk", "--out", out, "--steps", 3, "--save-video", video)
    assert r.exit_code == 0, r.output
    assert read_video(video).shape == (8, 32, 32, 3)


def test_import_silences_only_transformers_torchvision_fallback_note():
    import logging

    import moft  # noqa: F401  (installs the filter)

    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    logger = logging.getLogger("transformers.utils.import_utils")
    handler = Keep()
    logger.addHandler(handler)
    try:
        logger.warning("`CLIPImageProcessor` requires torchvision (not installed); falling back to "
                       "`CLIPImageProcessorPil` for backward compatibility.")
        logger.warning("some other warning")
    finally:
        logger.removeHandler(handler)
    assert seen == ["some other warning"]
