"""Evaluation suites: validation, deterministic items, sharding gives the same rows, resumability."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from moft.eval.evaluate import (SuiteError, check_suite, collect, items, load_suite, markdown_table, protocol, run_identity,
                           run_suite, score_transfer, score_trajectory, strict, summarise)

BENCHMARKS = __import__("pathlib").Path(__file__).resolve().parents[1] / "benchmarks"

SUITE = {
    "name": "t", "steps": 3, "guidance_scale": 4.0,
    "prompts": ["a red disk standing still"], "seeds": [0],
    "requests": [{"name": "left", "region": "object", "direction": "left", "speed": 0.05}],
    "settings": [{"name": "MOFT", "steps": [1, 2]}],
}


def _write(tmp_path, suite):
    p = tmp_path / "suite.json"
    p.write_text(json.dumps(suite))
    return p


def test_items_are_stable_and_include_an_unguided_baseline(tmp_path):
    suite = load_suite(_write(tmp_path, SUITE))
    a, b = items(suite), items(suite)
    assert [i["id"] for i in a] == [i["id"] for i in b]
    assert [i["setting"]["name"] for i in a] == ["unguided", "MOFT"]


@pytest.mark.parametrize("change, text", [
    ({"prompts": []}, "prompts"),
    ({"requests": [{"name": "x", "region": "middle", "direction": "left"}]}, "region"),
    ({"requests": [{"name": "x", "region": "object", "direction": "sideways"}]}, "direction"),
    ({"settings": [{"name": "x", "bogus": 1}]}, "unknown key"),
    ({"prompts": ["a disk"]}, "colour"),
    ({"settings": [{"name": "x", "target": "sketch"}]}, "target"),
    ({"target": "sketch"}, "target"),
    # issue 18 §7: each a one-line error naming the problem, before any model is loaded
    ({"prompts": [3]}, "prompts[0]: must be a non-empty string"),
    ({"seeds": ["0"]}, "seeds[0]: must be an integer"),
    ({"seeds": [2**70]}, "seeds[0]: must be an integer in"),
    ({"steps": "25"}, "steps: must be an integer"),
    ({"steps": 0}, "steps: must be an integer in [1,"),
    ({"settings": [{"name": "x", "iterations": "2"}]}, "settings[0].iterations: must be an integer"),
    ({"settings": [{"name": "x", "step_size": "big"}]}, "settings[0].step_size: must be a finite number"),
    ({"settings": [{"name": "x", "steps": ["1", 2]}]}, "settings[0].steps: must be [start, end]"),
    ({"settings": [{"name": "x", "steps": [30, 40]}]}, "run no step of the 3-step schedule"),
    ({"settings": [{"name": "x"}]}, "run no step of the 3-step schedule"),  # the default 3:12 with 3 steps
    ({"settings": [{"steps": [1, 2]}]}, "settings[0].name: must be a non-empty string"),
    ({"colour": "red"}, "top level: unknown key 'colour'"),
    ({"requests": ["left"]}, "requests[0]: must be an object"),
    ({"requests": [{"name": "x", "region": "object", "direction": "left", "speed": "fast"}]}, "requests[0].speed"),
    ({"guidance": {"steps": [5, 9]}}, "guidance.steps: 5:9 run no step of the 3-step schedule"),
    ({"guidance": {"shared_kv": "yes"}}, "guidance.shared_kv: must be true or false"),
    ({"guidance_scale": "4"}, "guidance_scale: must be a finite number"),
    ({"requests": [{"name": "t", "trajectory": {"version": 1, "regions": [{"mask": {"box": [0.5, 0, 0.2, 1]},
                                                                          "direction": "left"}]}}]},
     "requests[0].trajectory: regions[0].mask.box"),
    ({"requests": [{"name": "t", "trajectory": "missing.json"}]}, "requests[0].trajectory: "),
    ({"requests": [{"name": "t", "trajectory": {"version": 1, "regions": [{"mask": "all", "direction": "left"}]},
                    "speed": 0.1}]}, "requests[0]: unknown key 'speed'"),
    ({"requests": [{"name": "c", "reference_clip": "missing.gif"}]}, "requests[0].reference_clip: "),
    ({"requests": [{"name": "c", "reference_clip": str(BENCHMARKS / "clips" / "pan_left.gif"), "mask": {"circle": [0.5, 0.5, 0]}}]},
     "requests[0].mask.circle: "),
    ({"requests": [{"name": "t", "trajectory": {"version": 1, "regions": [
        {"mask": "all", "segments": [{"frames": [0, 11], "direction": "left"}]}]}}]}, None),  # fits 12+ frames
])
def test_bad_suites_are_one_line_errors(tmp_path, change, text):
    if text is None:  # a trajectory without "frames" is only checked against the model's frame count later
        suite = load_suite(_write(tmp_path, {**SUITE, **change}))
        check_suite(suite, 12, 32, 32, (16, 16))
        with pytest.raises(SuiteError, match=r"requests\[0\] \(t\): .*segments"):
            check_suite(suite, 8, 32, 32, (16, 16))
        return
    with pytest.raises(SuiteError) as info:
        load_suite(_write(tmp_path, {**SUITE, **change}))
    assert text in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "suite.json"))


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "the top level must be a JSON object, got a list"),
    ('{"prompts": ["a"], "seeds": [NaN]}', "NaN is not a JSON number"),
    ("{oops", "not valid JSON"),
])
def test_suites_that_are_not_objects_or_strict_json(tmp_path, text, message):
    p = tmp_path / "s.json"
    p.write_text(text)
    with pytest.raises(SuiteError, match=message.replace("[", r"\[")):
        load_suite(p)


def test_the_shipped_suites_load_and_fit_the_shipped_model():
    hub = load_suite(BENCHMARKS / "example_hub_animatediff.json")  # not runnable here: it loads and checks
    assert {protocol(r) for r in hub["requests"]} == {"trajectory", "motion-transfer"}
    check_suite(hub, 16, 512, 512, (64, 64))
    general = load_suite(BENCHMARKS / "general_metrics.json")
    assert {protocol(r) for r in general["requests"]} == {"trajectory", "motion-transfer"}
    plans = check_suite(general, 8, 32, 32, (16, 16))
    assert all(p["trajectory"].frames == 8 for p in plans.values())
    clips = [p["reference"] for p in plans.values() if p["reference"] is not None]
    assert len(clips) == 2 and all(c.shape == (8, 32, 32, 3) for c in clips)
    eight = {"version": 1, "frames": 8, "regions": [{"mask": "all", "direction": "right"}]}  # names its frame count
    pinned = dict(general, requests=[{"name": "pan (8 frames)", "trajectory": eight}])
    check_suite(pinned, 8, 32, 32, (16, 16))
    with pytest.raises(SuiteError, match="the model makes 16"):
        check_suite(pinned, 16, 32, 32, (16, 16))  # the file says 8 frames; the model makes 16
    with pytest.raises(SuiteError, match="too few frames: the clip has 16"):
        check_suite(dict(general, requests=general["requests"][4:]), 24, 32, 32, (16, 16))


def test_a_loaded_suite_is_a_suite_file_itself(tmp_path):
    """Paths become absolute and trajectory files inline: the loaded suite reloads from anywhere unchanged."""
    suite = load_suite(BENCHMARKS / "general_metrics.json")
    again = load_suite(_write(tmp_path, suite))
    assert again == suite and [i["id"] for i in items(again)] == [i["id"] for i in items(suite)]


def test_a_reference_clip_change_gives_new_item_ids(tmp_path):
    import shutil

    shutil.copy(BENCHMARKS / "clips" / "pan_left.gif", tmp_path / "clip.gif")
    suite = load_suite(_write(tmp_path, {**SUITE, "requests": [{"name": "c", "reference_clip": "clip.gif"}]}))
    before = {i["id"] for i in items(suite)}
    shutil.copy(BENCHMARKS / "clips" / "disk_right.gif", tmp_path / "clip.gif")
    assert before.isdisjoint({i["id"] for i in items(suite)})


def test_strict_rows_say_why_a_metric_is_null():
    row = strict({"a": float("nan"), "b": float("inf"), "c": np.float64(0.5), "d": "x"}, {"a": "no tracks"})
    assert row == {"a": None, "b": None, "c": 0.5, "d": "x",
                   "null_because": {"a": "no tracks", "b": "infinite (identical pixels)"}}
    json.dumps(row, allow_nan=False)
    assert "null_because" not in strict({"a": 1.0})


# ---------------------------------------------------------------------------
# the general scorers against planted motion (no model)
# ---------------------------------------------------------------------------


def _texture(size, seed):
    import cv2

    t = cv2.GaussianBlur(np.random.default_rng(seed).random((size, size, 3)).astype(np.float32), (0, 0), 1.5)
    return (t - t.min()) / (t.max() - t.min())


def _moving_square(step, size=64, frames=8, box=(14, 12, 46, 44)):
    """A textured square moving by ``step`` px/frame over a still texture: (F, S, S, 3) uint8."""
    ground, patch = 0.3 + 0.4 * _texture(size, 1), _texture(size, 2)
    x0, y0, x1, y1 = box
    video = np.repeat(ground[None], frames, axis=0)
    for k in range(frames):
        dx, dy = int(round(step[0] * k)), int(round(step[1] * k))
        video[k, y0 + dy:y1 + dy, x0 + dx:x1 + dx] = patch[y0:y1, x0:x1]
    return (video * 255).round().astype(np.uint8)


def _trajectory(region):
    from moft.io.trajectory import parse_trajectory

    return parse_trajectory({"version": 1, "frames": 8, "regions": [region]})


def test_score_trajectory_on_planted_motion():
    box = {"box": [14 / 64, 12 / 64, 46 / 64, 44 / 64]}
    traj = _trajectory({"mask": box, "direction": "right", "speed": 2 / 64})  # 2 px/frame right
    still, moved = _moving_square((0, 0)), _moving_square((2, 0))
    good, reasons = score_trajectory(moved, still, traj)
    assert good["direction_success_lk"] == 1.0 and good["motion_fidelity_lk"] > 0.95
    assert good["objmc_lk_px"] < 0.5 and good["trajectory_error_lk"] < 0.01
    assert good["toward_px_lk"] == pytest.approx(14.0, abs=0.5)  # 7 frames x 2 px more than the still source
    assert math.isnan(good["camera_error_flow_px"]) and "camera" in reasons["camera_error_flow_px"]
    assert good["psnr_outside"] > 40 and good["ssim_outside"] > 0.99  # the ground is untouched
    bad, _ = score_trajectory(_moving_square((-2, 0)), still, traj)
    assert bad["direction_success_lk"] == 0.0 and bad["motion_fidelity_lk"] < -0.5 and bad["objmc_lk_px"] > 10
    assert bad["toward_px_lk"] == pytest.approx(-14.0, abs=0.5)
    # the camera: a whole-frame pan request against a planted pan
    ground = _texture(96, 3)
    pan = np.stack([ground[16:80, 16 - 2 * k:80 - 2 * k] for k in range(8)])  # content moves right 2 px/frame
    pan = (pan * 255).round().astype(np.uint8)
    cam, reasons = score_trajectory(pan, pan[:1].repeat(8, 0), _trajectory({"mask": "all", "direction": "right",
                                                                             "speed": 2 / 64}))
    assert cam["camera_error_flow_px"] < 0.2 and cam["motion_fidelity_lk"] > 0.95 and cam["direction_success_lk"] == 1
    assert cam["psnr_outside"] != cam["psnr_outside"] and "cover the frame" in reasons["psnr_outside"]


def test_score_transfer_on_planted_motion():
    ref = _moving_square((2, 1))
    mask = np.zeros((64, 64), bool)
    mask[12:44, 14:46] = True
    same, _ = score_transfer(ref, _moving_square((0, 0)), ref, mask)
    assert same["motion_fidelity_lk"] == pytest.approx(1.0) and same["objmc_lk_px"] == pytest.approx(0.0, abs=1e-6)
    assert same["camera_error_flow_px"] < 0.05
    other, _ = score_transfer(_moving_square((-1, 2)), _moving_square((0, 0)), ref, mask)
    assert other["motion_fidelity_lk"] < 0.5 and other["objmc_lk_px"] > 5


def test_bad_json_suite(tmp_path):
    p = tmp_path / "s.json"
    p.write_text("{oops")
    with pytest.raises(SuiteError, match="not valid JSON"):
        load_suite(p)


def test_two_shards_give_the_same_rows_as_one(tmp_path, animatediff, tiny_channels, monkeypatch):
    import moft.eval.evaluate as ev

    # a random model draws no red disk; place one by hand so every item is scored
    real = ev.object_box
    monkeypatch.setattr(ev, "object_box", lambda frames, color, pad=1.5: real(frames, color) or (
        np.array([16.0, 16.0]), [0.35, 0.35, 0.65, 0.65]))
    suite = load_suite(_write(tmp_path, SUITE))
    run_suite(animatediff, suite, tmp_path / "one", tiny_channels)
    for k in range(2):
        run_suite(animatediff, suite, tmp_path / "two", tiny_channels, process_index=k, num_processes=2)
    ident = run_identity(animatediff, tiny_channels)
    one, two = collect(suite, tmp_path / "one", ident), collect(suite, tmp_path / "two", ident)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "target_seconds")} for r in rows]  # noqa: E731
    assert strip(one) == strip(two) and len(one) == 2
    assert all(r["status"] == "ok" for r in one)
    table = summarise(one)
    assert [t["setting"] for t in table] == ["unguided", "MOFT"]
    assert "| MOFT |" in markdown_table(table)
    assert {"toward_px", "motion_kept"} <= set(one[1]) and "pushed toward (px)" in markdown_table(table)


def test_finished_items_are_not_redone(tmp_path, animatediff, tiny_channels, monkeypatch):
    import moft.eval.evaluate as ev

    suite = load_suite(_write(tmp_path, SUITE))
    for it in items(suite, run_identity(animatediff, tiny_channels)):
        (tmp_path / "w").mkdir(exist_ok=True)
        (tmp_path / "w" / f"{it['id']}.json").write_text(json.dumps({"id": it["id"], "setting": "x", "status": "done"}))
    monkeypatch.setattr(ev, "run_item", lambda *a, **k: pytest.fail("an item was redone"))
    rows = run_suite(animatediff, suite, tmp_path / "w", tiny_channels)
    assert [r["status"] for r in rows] == ["done", "done"]


def test_shards_take_whole_groups_round_robin(tmp_path, animatediff, tiny_channels, monkeypatch):
    import moft.eval.evaluate as ev

    suite = load_suite(_write(tmp_path, {**SUITE, "seeds": [0, 1, 2],
                                         "requests": SUITE["requests"] + [dict(SUITE["requests"][0], name="right",
                                                                               direction="right")]}))
    ran = {0: [], 1: []}
    for k in (0, 1):
        monkeypatch.setattr(ev, "run_item", lambda pipe, suite, item, *a, k=k, **kw: ran[k].append(item) or
                            {"id": item["id"], "status": "ok"})
        run_suite(animatediff, suite, tmp_path / f"w{k}", tiny_channels, process_index=k, num_processes=2)
    groups = [{it["group"] for it in ran[k]} for k in (0, 1)]
    assert groups[0].isdisjoint(groups[1]) and len(groups[0]) == len(groups[1]) == 3
    for k in (0, 1):  # each share holds every setting of its groups: unguided and guided alike
        assert sorted(it["setting"]["name"] for it in ran[k]) == ["MOFT"] * 3 + ["unguided"] * 3
    assert len(ran[0]) + len(ran[1]) == len(items(suite))


def test_rows_of_another_model_or_channel_file_are_not_reused(tmp_path, animatediff, tiny_channels, monkeypatch):
    import dataclasses

    import moft.eval.evaluate as ev

    suite = load_suite(_write(tmp_path, SUITE))
    for it in items(suite, run_identity(animatediff, tiny_channels)):
        (tmp_path / "w").mkdir(exist_ok=True)
        (tmp_path / "w" / f"{it['id']}.json").write_text(json.dumps({"id": it["id"], "status": "done"}))
    other = dataclasses.replace(tiny_channels, horizontal=tiny_channels.horizontal.flip(0))
    assert run_identity(animatediff, other) != run_identity(animatediff, tiny_channels)
    redone = []
    monkeypatch.setattr(ev, "run_item", lambda pipe, suite, item, *a, **k: redone.append(item["id"]) or
                        {"id": item["id"], "status": "redone"})
    rows = run_suite(animatediff, suite, tmp_path / "w", other)
    assert [r["status"] for r in rows] == ["redone", "redone"]


def test_run_identity_follows_the_weights(animatediff, tiny_channels):
    import copy

    import torch

    before = run_identity(animatediff, tiny_channels)
    changed = copy.deepcopy(animatediff)
    with torch.no_grad():
        next(changed.unet.parameters()).flatten()[0] += 1.0
    assert run_identity(changed, tiny_channels) != before
    redrawn = copy.deepcopy(animatediff)  # a retuned decoder renders (and so scores) other frames
    with torch.no_grad():
        next(redrawn.vae.decoder.parameters()).flatten()[0] += 1.0
    assert run_identity(redrawn, tiny_channels) != before
    assert run_identity(animatediff, tiny_channels) == before


def test_item_ids_change_with_the_base_guidance(tmp_path):
    a = load_suite(_write(tmp_path, SUITE))
    b = dict(a, guidance={"step_size": 50})
    assert {i["id"] for i in items(a)}.isdisjoint({i["id"] for i in items(b)})


def test_item_ids_change_with_the_scorer_version(tmp_path, monkeypatch):
    import moft.eval.evaluate as ev

    suite = load_suite(_write(tmp_path, SUITE))
    before = [i["id"] for i in items(suite)]
    monkeypatch.setattr(ev, "SCORER_VERSION", ev.SCORER_VERSION + 1)
    assert not set(before) & {i["id"] for i in items(suite)}


def test_summary_takes_the_median_of_motion_kept():
    rows = [{"setting": "s", "status": "ok", "motion_kept": k, "toward_px": t, "direction_success": 0.0,
             "motion_fidelity_lk": 0.1, "trajectory_error": 0.2, "psnr_outside": 30.0, "ssim_outside": 0.9, "seconds": 1.0}
            for k, t in ((0.5, 1.0), (0.6, -1.0), (100.0, 3.0))]
    (entry,) = summarise(rows)
    assert entry["motion_kept"] == 0.6 and entry["toward_px"] == 1.0


def test_a_diverging_setting_is_a_failed_request_not_a_crash(tmp_path, animatediff, tiny_channels, monkeypatch):
    import moft.eval.evaluate as ev

    monkeypatch.setattr(ev, "object_box", lambda frames, color, pad=1.5: (np.array([16.0, 16.0]), [0.35, 0.35, 0.65, 0.65]))
    suite = load_suite(_write(tmp_path, {**SUITE, "settings": [{"name": "huge", "steps": [1, 2], "step_size": 1e39}]}))
    rows = run_suite(animatediff, suite, tmp_path / "w", tiny_channels)
    huge = next(r for r in rows if r["setting"] == "huge")
    assert huge["status"] == "ok" and huge["direction_success"] == 0.0 and "diverged at step 1" in huge["diverged"]
    table = summarise(rows)
    assert table[1]["diverged"] == 1 and table[1]["direction_success"] == 0.0
    assert "| huge | 1/1 (1 diverged) |" in markdown_table(table)


def test_a_drag_setting_scores_a_per_position_target(tmp_path, animatediff, tiny_channels, monkeypatch):
    import moft.eval.evaluate as ev
    import moft.method.control_target as builder

    monkeypatch.setattr(ev, "object_box", lambda frames, color, pad=1.5: (np.array([16.0, 16.0]), [0.35, 0.35, 0.65, 0.65]))
    made = []
    real = builder.drag_target  # the one target dispatch moft control and moft evaluate share
    monkeypatch.setattr(builder, "drag_target", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    suite = load_suite(_write(tmp_path, {**SUITE, "settings": [
        {"name": "drag", "steps": [1, 2], "target": "drag", "loss": "per_position"}, {"name": "curves", "steps": [1, 2]}]}))
    rows = run_suite(animatediff, suite, tmp_path / "w", tiny_channels)
    assert [r["status"] for r in rows] == ["ok"] * 3 and len(made) == 1
    assert made[0].meta["source"] == "drag" and made[0].maps is not None
    # the suite-level default kind applies to settings that do not name one
    drag_default = load_suite(_write(tmp_path, {**SUITE, "target": "drag"}))
    assert {i["id"] for i in items(drag_default)}.isdisjoint({i["id"] for i in items(suite)})


# ---------------------------------------------------------------------------
# the general-metrics suite end to end on the shipped model
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_general_metrics_suite_runs_end_to_end_on_the_shipped_model(tmp_path):
    """Every request of benchmarks/general_metrics.json (explicit regions, a trajectory file, two reference
    clips) through ``moft evaluate`` with 2 DDIM steps and one guided iteration: a strict-JSON report of
    general (LK/flow) metrics only."""
    from typer.testing import CliRunner

    from moft.front.cli import app

    suite = load_suite(BENCHMARKS / "general_metrics.json")  # absolute paths: runnable from tmp_path
    suite.update(steps=2, seeds=[0], settings=[{"name": "MOFT", "steps": [0, 1], "iterations": 1,
                                                "target": "curves", "loss": "region_mse"}])
    out = tmp_path / "report.json"
    r = CliRunner().invoke(app, ["evaluate", str(_write(tmp_path, suite)), "--out", str(out)])
    assert r.exit_code == 0, r.output
    text = out.read_text()
    report = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the report"))
    rows = report["rows"]
    assert len(rows) == 2 * len(suite["requests"]) and all(r["status"] == "ok" for r in rows)
    assert {r["protocol"] for r in rows} == {"trajectory", "motion-transfer"}
    assert not any(k in r for r in rows for k in ("direction_success", "trajectory_error", "toward_px"))  # no colour
    for r in rows:
        assert r["motion_fidelity_lk"] is not None and -1 <= r["motion_fidelity_lk"] <= 1
        for key, value in r.items():
            assert value is not None or key in r["null_because"]
    assert "Motion Fidelity (LK)" in out.with_suffix(".md").read_text()


def test_evaluate_cli_rejects_a_bad_suite_before_loading_the_model(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import moft.front.cli as cli

    monkeypatch.setattr(cli, "_load", lambda model: pytest.fail("the model was loaded"))
    r = CliRunner().invoke(cli.app, ["evaluate", str(_write(tmp_path, {**SUITE, "requests": ["left"]})),
                                     "--out", str(tmp_path / "r.json")])
    assert r.exit_code == 2 and "requests[0]: must be an object" in r.output and "Traceback" not in r.output


def _zooming(zoom, size=64, frames=8, box=None):
    """A texture scaled by 1 -> ``zoom`` linearly about the frame centre, resampled from a 4x larger
    one: the whole frame (a camera zoom), or only the patch inside ``box`` (x0, y0, x1, y1 px; the
    ground still): (F, S, S, 3) uint8."""
    import cv2

    big = _texture(4 * size, 5)
    c, C = (size - 1) / 2, (4 * size - 1) / 2
    ground = 0.3 + 0.4 * _texture(size, 1)
    video = []
    for k in range(frames):
        s = 1 + (zoom - 1) * k / (frames - 1)
        m = np.float32([[1 / s, 0, C - c / s], [0, 1 / s, C - c / s]])  # output px -> texture px
        frame = cv2.warpAffine(big, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        if box is not None:
            x0, y0, x1, y1 = box
            inside = np.zeros((size, size), np.float32)
            inside[y0:y1, x0:x1] = 1
            inside = cv2.warpAffine(inside, np.float32([[s, 0, c - s * c], [0, s, c - s * c]]), (size, size))[..., None]
            frame = inside * frame + (1 - inside) * ground
        video.append(frame)
    return (np.stack(video) * 255).round().clip(0, 255).astype(np.uint8)


def test_score_trajectory_measures_a_planted_zoom():
    zoom_in = _trajectory({"mask": "all", "zoom": 1.3})
    good, reasons = score_trajectory(_zooming(1.3), _zooming(1.0), zoom_in)
    assert good["zoom_success_lk"] == 1.0 and good["zoom_achieved_lk"] == pytest.approx(1.0, abs=0.1)
    assert good["motion_fidelity_lk"] > 0.9 and good["objmc_lk_px"] < 1.0  # each point asked to go where the zoom takes it
    bad, _ = score_trajectory(_zooming(1 / 1.3), _zooming(1.0), zoom_in)
    assert bad["zoom_success_lk"] == 0.0 and bad["zoom_achieved_lk"] < -0.8
    still, _ = score_trajectory(_zooming(1.0), _zooming(1.0), zoom_in)
    assert still["zoom_success_lk"] == 0.0 and abs(still["zoom_achieved_lk"]) < 0.1
    # an object zoomed out inside its box; the ground outside where it was is untouched
    box = {"box": [16 / 64, 16 / 64, 48 / 64, 48 / 64]}
    obj, reasons = score_trajectory(_zooming(0.7, box=(16, 16, 48, 48)), _zooming(1.0, box=(16, 16, 48, 48)),
                                    _trajectory({"mask": box, "zoom": 0.7}))
    assert obj["zoom_success_lk"] == 1.0 and obj["zoom_achieved_lk"] == pytest.approx(1.0, abs=0.2)
    assert obj["glitch"] is False and obj["psnr_outside"] > 40
    assert "zoom_success_lk" not in score_trajectory(_moving_square((2, 0)), _moving_square((0, 0)),
                                                     _trajectory({"mask": box, "direction": "right"}))[0]


def test_rows_flag_a_glitch_frame_outside_the_region():
    box = {"box": [14 / 64, 12 / 64, 46 / 64, 44 / 64]}
    traj = _trajectory({"mask": box, "direction": "right", "speed": 2 / 64})
    moved, still = _moving_square((2, 0)), _moving_square((0, 0))
    clean, _ = score_trajectory(moved, still, traj)
    assert clean["glitch"] is False and clean["frame_change_max"] < 0.05
    blob = moved.copy()
    blob[5, 50:56, 2:8] = (255, 0, 255)  # a one-frame magenta blob in a corner of the ground
    flagged, _ = score_trajectory(blob, still, traj)
    assert flagged["glitch"] is True and flagged["frame_change_max"] > 0.3
    pan, reasons = score_trajectory(still, still, _trajectory({"mask": "all", "direction": "right"}))
    assert math.isnan(pan["glitch"]) and "cover the frame" in reasons["glitch"]
    table = summarise([dict(strict(clean), setting="a", status="ok"), dict(strict(flagged), setting="a", status="ok")])
    assert table[0]["glitch"] == 0.5 and "glitch rate" in markdown_table(table)


def test_the_zoom_suite_asks_for_zooms_both_ways_on_seeds_no_other_suite_uses():
    suite = load_suite(BENCHMARKS / "zoom.json")
    plans = check_suite(suite, 8, 32, 32, (16, 16))
    zooms = [[r.zoom for r in p["trajectory"].regions] for p in plans.values()]
    assert sorted(z for zs in zooms for z in zs) == [0.77, 0.77, 1.3, 1.3]
    assert {p["trajectory"].regions[0].mask == "all" for p in plans.values()} == {True, False}
    others = {s for f in BENCHMARKS.glob("*.json") if f.name != "zoom.json"
              for s in json.loads(f.read_text()).get("seeds", [])}
    assert not set(suite["seeds"]) & others


def test_a_curves_setting_on_a_zoom_request_is_a_row_status_not_a_crash(animatediff, tiny_channels):
    from moft.eval.evaluate import _target
    from moft.method.settings import GuidanceConfig

    extra = {"features": None, "fraction": None, "gain": None, "target": None}
    source = np.zeros((8, 32, 32, 3), np.float32)  # (F, H, W, 3): never sampled, a curves target needs no video
    reason = _target(animatediff, None, _trajectory({"mask": "all", "zoom": 1.3}), tiny_channels, extra, 3, source,
                     "curves", GuidanceConfig())
    assert isinstance(reason, str) and reason.startswith("regions[0].zoom: a curves target cannot express a zoom")


def _disks(steps, size=32, frames=8):
    """Coloured disks over a grey ground, each moving by its (dx, dy) px/frame: (F, S, S, 3) float."""
    from moft.io.synthetic import COLORS

    video = np.full((frames, size, size, 3), 0.4, np.float32)
    yy, xx = np.mgrid[:size, :size]
    for (color, (x, y)), (dx, dy) in zip((("red", (10, 10)), ("blue", (22, 22))), steps):
        for k in range(frames):
            video[k, (xx - x - dx * k) ** 2 + (yy - y - dy * k) ** 2 <= 9] = COLORS[color]
    return video


def test_score_synthetic_gives_the_share_of_the_requested_displacement_and_all_objects_right():
    """The request asks 1.6 px/frame right (11.2 px over 8 frames); the red disk moves 1 px/frame more
    than in the source: a share of 7 / 11.2. Two objects: both right only when each moved its way."""
    from moft.eval.evaluate import score_synthetic

    def part(color, direction, start):
        d = np.asarray({"right": (1.0, 0.0), "left": (-1.0, 0.0)}[direction])
        return {"color": color, "direction": direction, "region": "object",
                "requested": np.asarray(start, float) + np.arange(8)[:, None] * 1.6 * d}

    box = {"box": [4 / 32, 4 / 32, 16 / 32, 16 / 32]}
    traj = _trajectory({"mask": box, "direction": "right", "speed": 0.05})
    scores, _ = score_synthetic(_disks([(1, 0), (0, 0)]), _disks([(0, 0), (0, 0)]), [part("red", "right", (10, 10))], traj)
    assert scores["displacement_share"] == pytest.approx(7 / 11.2, abs=0.02) and scores["all_success"] == 1.0
    from moft.io.trajectory import parse_trajectory

    two = parse_trajectory({"version": 1, "frames": 8, "regions": [
        {"mask": box, "direction": "right", "speed": 0.05},
        {"mask": {"box": [16 / 32, 16 / 32, 28 / 32, 28 / 32]}, "direction": "left", "speed": 0.05}]})
    parts = [part("red", "right", (10, 10)), part("blue", "left", (22, 22))]
    both, _ = score_synthetic(_disks([(1, 0), (-1, 0)]), _disks([(0, 0), (0, 0)]), parts, two)
    one, _ = score_synthetic(_disks([(1, 0), (1, 0)]), _disks([(0, 0), (0, 0)]), parts, two)
    assert both["all_success"] == 1.0 and one["all_success"] == 0.0 and one["direction_success"] == 0.5
    table = summarise([dict(strict(s), setting="a", status="ok") for s in (both, one)])
    assert table[0]["all_success"] == 0.5 and "all objects right" in markdown_table(table)


def test_the_lever_suites_load_with_the_new_guidance_fields(tmp_path):
    suite = load_suite(BENCHMARKS / "tune_levers.json")
    assert {s.get("optimizer", "sgd") for s in suite["settings"]} >= {"sgd", "adam", "normalized"}
    bad = {"prompts": ["a red disk"], "seeds": [0], "settings": [{"name": "x", "grad_every": "2"}],
           "requests": [{"name": "l", "region": "object", "direction": "left"}]}
    with pytest.raises(SuiteError, match=r"settings\[0\]\.grad_every: must be an integer"):
        load_suite(_write(tmp_path, bad))


def test_rows_named_for_fixed_settings_pin_the_levers_a_model_default_would_fill():
    """A suite's guidance is laid over the model's moft.json defaults, so a row that claims fixed settings (the
    paper's official ones, an old SGD default) must name the optimizer and distance itself: otherwise a model
    whose default is Adam + cosine runs it with Adam + cosine (found in the control-goals suite)."""
    fixed, official = ("official", "paper:", "sgd", "old default"), ("official", "paper:")
    checked = 0
    for path in sorted(BENCHMARKS.glob("*.json")):
        suite = json.loads(path.read_text())
        for s in suite.get("settings", []):
            name = s["name"].lower()
            if any(word in name for word in fixed):
                pinned = {k: s.get(k, suite.get("guidance", {}).get(k)) for k in ("optimizer", "distance")}
                assert None not in pinned.values(), (path.name, s["name"], pinned)
                if any(word in name for word in official):  # the official code: plain gradient steps on an L2 loss
                    assert pinned == {"optimizer": "sgd", "distance": "l2"}, (path.name, s["name"], pinned)
                checked += 1
    assert checked >= 5  # the control-goals, two-objects and tuning suites' fixed rows
