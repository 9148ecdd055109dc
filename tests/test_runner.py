"""Running suites (moft.eval.runner): deterministic items, sharding gives the same rows, resumability."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import moft.eval.objects as objects
import moft.eval.runner as runner
from conftest import SUITE, write_suite
from moft.eval.runner import collect, items, run_identity, run_suite
from moft.eval.scoring import markdown_table, summarise
from moft.eval.suite import load_suite
from moft.io.trajectory import parse_trajectory

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_items_are_stable_and_include_an_unguided_baseline(tmp_path):
    suite = load_suite(write_suite(tmp_path, SUITE))
    a, b = items(suite), items(suite)
    assert [i["id"] for i in a] == [i["id"] for i in b]
    assert [i["setting"]["name"] for i in a] == ["unguided", "MOFT"]


def test_a_reference_clip_change_gives_new_item_ids(tmp_path):
    import shutil

    shutil.copy(BENCHMARKS / "clips" / "pan_left.gif", tmp_path / "clip.gif")
    suite = load_suite(write_suite(tmp_path, {**SUITE, "requests": [{"name": "c", "reference_clip": "clip.gif"}]}))
    before = {i["id"] for i in items(suite)}
    shutil.copy(BENCHMARKS / "clips" / "disk_right.gif", tmp_path / "clip.gif")
    assert before.isdisjoint({i["id"] for i in items(suite)})


def test_item_ids_change_with_the_base_guidance(tmp_path):
    a = load_suite(write_suite(tmp_path, SUITE))
    b = dict(a, guidance={"step_size": 50})
    assert {i["id"] for i in items(a)}.isdisjoint({i["id"] for i in items(b)})


def test_item_ids_change_with_the_scorer_version(tmp_path, monkeypatch):

    suite = load_suite(write_suite(tmp_path, SUITE))
    before = [i["id"] for i in items(suite)]
    monkeypatch.setattr(runner, "SCORER_VERSION", runner.SCORER_VERSION + 1)
    assert not set(before) & {i["id"] for i in items(suite)}


def test_two_shards_give_the_same_rows_as_one(tmp_path, animatediff, tiny_channels, monkeypatch):

    # a random model draws no red disk; place one by hand so every item is scored
    real = objects.object_box
    monkeypatch.setattr(objects, "object_box", lambda frames, color, pad=1.5: real(frames, color) or (
        np.array([16.0, 16.0]), [0.35, 0.35, 0.65, 0.65]))
    suite = load_suite(write_suite(tmp_path, SUITE))
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

    suite = load_suite(write_suite(tmp_path, SUITE))
    for it in items(suite, run_identity(animatediff, tiny_channels)):
        (tmp_path / "w").mkdir(exist_ok=True)
        (tmp_path / "w" / f"{it['id']}.json").write_text(json.dumps({"id": it["id"], "setting": "x", "status": "done"}))
    monkeypatch.setattr(runner, "run_item", lambda *a, **k: pytest.fail("an item was redone"))
    rows = run_suite(animatediff, suite, tmp_path / "w", tiny_channels)
    assert [r["status"] for r in rows] == ["done", "done"]


def test_shards_take_whole_groups_round_robin(tmp_path, animatediff, tiny_channels, monkeypatch):

    suite = load_suite(write_suite(tmp_path, {**SUITE, "seeds": [0, 1, 2],
                                         "requests": SUITE["requests"] + [dict(SUITE["requests"][0], name="right",
                                                                               direction="right")]}))
    ran = {0: [], 1: []}
    for k in (0, 1):
        monkeypatch.setattr(runner, "run_item", lambda pipe, suite, item, *a, k=k, **kw: ran[k].append(item) or
                            {"id": item["id"], "status": "ok"})
        run_suite(animatediff, suite, tmp_path / f"w{k}", tiny_channels, process_index=k, num_processes=2)
    groups = [{it["group"] for it in ran[k]} for k in (0, 1)]
    assert groups[0].isdisjoint(groups[1]) and len(groups[0]) == len(groups[1]) == 3
    for k in (0, 1):  # each share holds every setting of its groups: unguided and guided alike
        assert sorted(it["setting"]["name"] for it in ran[k]) == ["MOFT"] * 3 + ["unguided"] * 3
    assert len(ran[0]) + len(ran[1]) == len(items(suite))


def test_rows_of_another_model_or_channel_file_are_not_reused(tmp_path, animatediff, tiny_channels, monkeypatch):
    import dataclasses


    suite = load_suite(write_suite(tmp_path, SUITE))
    for it in items(suite, run_identity(animatediff, tiny_channels)):
        (tmp_path / "w").mkdir(exist_ok=True)
        (tmp_path / "w" / f"{it['id']}.json").write_text(json.dumps({"id": it["id"], "status": "done"}))
    other = dataclasses.replace(tiny_channels, horizontal=tiny_channels.horizontal.flip(0))
    assert run_identity(animatediff, other) != run_identity(animatediff, tiny_channels)
    redone = []
    monkeypatch.setattr(runner, "run_item", lambda pipe, suite, item, *a, **k: redone.append(item["id"]) or
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


def test_a_diverging_setting_is_a_failed_request_not_a_crash(tmp_path, animatediff, tiny_channels, monkeypatch):

    monkeypatch.setattr(objects, "object_box", lambda frames, color, pad=1.5: (np.array([16.0, 16.0]), [0.35, 0.35, 0.65, 0.65]))
    suite = load_suite(write_suite(tmp_path, {**SUITE, "settings": [{"name": "huge", "steps": [1, 2], "step_size": 1e39}]}))
    rows = run_suite(animatediff, suite, tmp_path / "w", tiny_channels)
    huge = next(r for r in rows if r["setting"] == "huge")
    assert huge["status"] == "ok" and huge["direction_success"] == 0.0 and "diverged at step 1" in huge["diverged"]
    table = summarise(rows)
    assert table[1]["diverged"] == 1 and table[1]["direction_success"] == 0.0
    assert "| huge | 1/1 (1 diverged) |" in markdown_table(table)


def test_a_drag_setting_scores_a_per_position_target(tmp_path, animatediff, tiny_channels, monkeypatch):
    import moft.method.control_target as builder

    monkeypatch.setattr(objects, "object_box", lambda frames, color, pad=1.5: (np.array([16.0, 16.0]), [0.35, 0.35, 0.65, 0.65]))
    made = []
    real = builder.drag_target  # the one target dispatch moft control and moft evaluate share
    monkeypatch.setattr(builder, "drag_target", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    suite = load_suite(write_suite(tmp_path, {**SUITE, "settings": [
        {"name": "drag", "steps": [1, 2], "target": "drag", "loss": "per_position"}, {"name": "curves", "steps": [1, 2]}]}))
    rows = run_suite(animatediff, suite, tmp_path / "w", tiny_channels)
    assert [r["status"] for r in rows] == ["ok"] * 3 and len(made) == 1
    assert made[0].meta["source"] == "drag" and made[0].maps is not None
    # the suite-level default kind applies to settings that do not name one
    drag_default = load_suite(write_suite(tmp_path, {**SUITE, "target": "drag"}))
    assert {i["id"] for i in items(drag_default)}.isdisjoint({i["id"] for i in items(suite)})


def test_a_curves_setting_on_a_zoom_request_is_a_row_status_not_a_crash(animatediff, tiny_channels):
    from moft.method.settings import GuidanceConfig

    extra = {"features": None, "fraction": None, "gain": None, "target": None}
    source = np.zeros((8, 32, 32, 3), np.float32)  # (F, H, W, 3): never sampled, a curves target needs no video
    zoom = parse_trajectory({"version": 1, "frames": 8, "regions": [{"mask": "all", "zoom": 1.3}]})
    reason = runner._target(animatediff, None, zoom, tiny_channels, extra, 3, source, "curves", GuidanceConfig())
    assert isinstance(reason, str) and reason.startswith("regions[0].zoom: a curves target cannot express a zoom")


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
    r = CliRunner().invoke(app, ["evaluate", str(write_suite(tmp_path, suite)), "--out", str(out)])
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
