"""Evaluation suites: validation, deterministic items, sharding gives the same rows, resumability."""

from __future__ import annotations

import json

import numpy as np
import pytest

from moft.evaluate import SuiteError, collect, items, load_suite, markdown_table, run_identity, run_suite, summarise

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
])
def test_bad_suites_are_one_line_errors(tmp_path, change, text):
    with pytest.raises(SuiteError, match=text):
        load_suite(_write(tmp_path, {**SUITE, **change}))


def test_bad_json_suite(tmp_path):
    p = tmp_path / "s.json"
    p.write_text("{oops")
    with pytest.raises(SuiteError, match="not valid JSON"):
        load_suite(p)


def test_two_shards_give_the_same_rows_as_one(tmp_path, animatediff, tiny_channels, monkeypatch):
    import moft.evaluate as ev

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
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(one) == strip(two) and len(one) == 2
    assert all(r["status"] == "ok" for r in one)
    table = summarise(one)
    assert [t["setting"] for t in table] == ["unguided", "MOFT"]
    assert "| MOFT |" in markdown_table(table)
    assert {"toward_px", "motion_kept"} <= set(one[1]) and "pushed toward (px)" in markdown_table(table)


def test_finished_items_are_not_redone(tmp_path, animatediff, tiny_channels, monkeypatch):
    import moft.evaluate as ev

    suite = load_suite(_write(tmp_path, SUITE))
    for it in items(suite, run_identity(animatediff, tiny_channels)):
        (tmp_path / "w").mkdir(exist_ok=True)
        (tmp_path / "w" / f"{it['id']}.json").write_text(json.dumps({"id": it["id"], "setting": "x", "status": "done"}))
    monkeypatch.setattr(ev, "run_item", lambda *a, **k: pytest.fail("an item was redone"))
    rows = run_suite(animatediff, suite, tmp_path / "w", tiny_channels)
    assert [r["status"] for r in rows] == ["done", "done"]


def test_shards_take_whole_groups_round_robin(tmp_path, animatediff, tiny_channels, monkeypatch):
    import moft.evaluate as ev

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

    import moft.evaluate as ev

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
    assert run_identity(animatediff, tiny_channels) == before


def test_item_ids_change_with_the_base_guidance(tmp_path):
    a = load_suite(_write(tmp_path, SUITE))
    b = dict(a, guidance={"step_size": 50})
    assert {i["id"] for i in items(a)}.isdisjoint({i["id"] for i in items(b)})


def test_item_ids_change_with_the_scorer_version(tmp_path, monkeypatch):
    import moft.evaluate as ev

    suite = load_suite(_write(tmp_path, SUITE))
    before = [i["id"] for i in items(suite)]
    monkeypatch.setattr(ev, "SCORER_VERSION", ev.SCORER_VERSION + 1)
    assert not set(before) & {i["id"] for i in items(suite)}


def test_summary_takes_the_median_of_motion_kept():
    rows = [{"setting": "s", "status": "ok", "motion_kept": k, "toward_px": t, "direction_success": 0.0,
             "motion_fidelity": 0.1, "trajectory_error": 0.2, "psnr_outside": 30.0, "ssim_outside": 0.9, "seconds": 1.0}
            for k, t in ((0.5, 1.0), (0.6, -1.0), (100.0, 3.0))]
    (entry,) = summarise(rows)
    assert entry["motion_kept"] == 0.6 and entry["toward_px"] == 1.0


def test_a_diverging_setting_is_a_failed_request_not_a_crash(tmp_path, animatediff, tiny_channels, monkeypatch):
    import moft.evaluate as ev

    monkeypatch.setattr(ev, "object_box", lambda frames, color, pad=1.5: (np.array([16.0, 16.0]), [0.35, 0.35, 0.65, 0.65]))
    suite = load_suite(_write(tmp_path, {**SUITE, "settings": [{"name": "huge", "steps": [1, 2], "step_size": 1e39}]}))
    rows = run_suite(animatediff, suite, tmp_path / "w", tiny_channels)
    huge = next(r for r in rows if r["setting"] == "huge")
    assert huge["status"] == "ok" and huge["direction_success"] == 0.0 and "diverged at step 1" in huge["diverged"]
    table = summarise(rows)
    assert table[1]["diverged"] == 1 and table[1]["direction_success"] == 0.0
    assert "| huge | 1/1 (1 diverged) |" in markdown_table(table)


def test_a_drag_setting_scores_a_per_position_target(tmp_path, animatediff, tiny_channels, monkeypatch):
    import moft.evaluate as ev

    monkeypatch.setattr(ev, "object_box", lambda frames, color, pad=1.5: (np.array([16.0, 16.0]), [0.35, 0.35, 0.65, 0.65]))
    made = []
    real = ev.drag_target
    monkeypatch.setattr(ev, "drag_target", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    suite = load_suite(_write(tmp_path, {**SUITE, "settings": [
        {"name": "drag", "steps": [1, 2], "target": "drag", "loss": "per_position"}, {"name": "curves", "steps": [1, 2]}]}))
    rows = run_suite(animatediff, suite, tmp_path / "w", tiny_channels)
    assert [r["status"] for r in rows] == ["ok"] * 3 and len(made) == 1
    assert made[0].meta["source"] == "drag" and made[0].maps is not None
    # the suite-level default kind applies to settings that do not name one
    drag_default = load_suite(_write(tmp_path, {**SUITE, "target": "drag"}))
    assert {i["id"] for i in items(drag_default)}.isdisjoint({i["id"] for i in items(suite)})
