"""Evaluation suite files (moft.eval.suite): every field checked before any model loads, one line naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SUITE, write_suite
from moft.eval.runner import items
from moft.eval.suite import SuiteError, check_suite, load_suite, protocol, with_model_defaults

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("change, text", [
    ({"prompts": []}, "prompts: must have at least 1 prompt, got 0"),
    ({"requests": [{"name": "x", "region": "middle", "direction": "left"}]}, "requests[0].region: must be one of"),
    ({"requests": [{"name": "x", "region": "object", "direction": "sideways"}]}, "requests[0].direction: must be one of"),
    ({"settings": [{"name": "x", "bogus": 1}]}, "settings[0]: unknown key 'bogus'"),
    ({"prompts": ["a disk"]}, "prompts[0]: must name one of the colours"),
    ({"settings": [{"name": "x", "target": "sketch"}]}, "settings[0].target: must be one of"),
    ({"target": "sketch"}, "target: must be one of"),
    # issue 18 §7: each a one-line error naming the problem, before any model is loaded
    ({"prompts": [3]}, "prompts[0]: must be a non-empty string"),
    ({"seeds": ["0"]}, "seeds[0]: must be an integer"),
    ({"seeds": [2**70]}, "seeds[0]: must be in [0, 9223372036854775807]"),
    ({"steps": "25"}, "steps: must be an integer"),
    ({"steps": 0}, "steps: must be in [1, 10000], got 0"),
    ({"settings": [{"name": "x", "iterations": "2"}]}, "settings[0].iterations: must be an integer"),
    ({"settings": [{"name": "x", "step_size": "big"}]}, "settings[0].step_size: must be a finite number"),
    ({"settings": [{"name": "x", "steps": ["1", 2]}]}, "settings[0].steps: must be [start, end]"),
    ({"settings": [{"name": "x", "steps": [30, 40]}]}, "run no step of the 3-step schedule"),
    ({"settings": [{"name": "x"}]}, "run no step of the 3-step schedule"),  # the default 3:12 with 3 steps
    ({"settings": [{"steps": [1, 2]}]}, "settings[0].name: must be a non-empty string"),
    ({"colour": "red"}, "top level: unknown key 'colour'"),
    ({"requests": ["left"]}, "requests[0]: must be an object, got string"),
    ({"requests": [{"name": "x", "region": "object", "direction": "left", "speed": "fast"}]},
     "requests[0].speed: must be a number, got string 'fast'"),
    ({"requests": [{"name": "x", "region": "object", "direction": "left", "speed": 0}]}, "requests[0].speed: must be in (0, 1]"),
    ({"requests": [{"name": "x", "direction": "left"}]}, "requests[0]: missing key 'region'"),
    ({"requests": [{"name": "x", "region": "all", "reference": {}}]}, "requests[0].reference: missing key 'direction'"),
    ({"requests": [{"name": "x", "objects": [{"color": "first"}]}]}, "requests[0].objects[0]: missing key 'direction'"),
    ({"requests": [{"name": "x", "objects": [{"color": "pink", "direction": "up"}]}]},
     "requests[0].objects[0].color: must be one of"),
    ({"seed": [0]}, "top level: unknown key 'seed'; did you mean 'seeds'?"),
    ({"settings": [{"name": "x", "fraction": 0}]}, "settings[0].fraction: must be in (0, 1]"),
    ({"guidance": {"steps": [5, 9]}}, "guidance.steps: 5:9 run no step of the 3-step schedule"),
    ({"guidance": {"shared_kv": "yes"}}, "guidance.shared_kv: must be true or false"),
    ({"guidance_scale": "4"}, "guidance_scale: must be a number, got string '4'"),
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
        suite = load_suite(write_suite(tmp_path, {**SUITE, **change}))
        check_suite(suite, 12, 32, 32, (16, 16))
        with pytest.raises(SuiteError, match=r"requests\[0\] \(t\): .*segments"):
            check_suite(suite, 8, 32, 32, (16, 16))
        return
    with pytest.raises(SuiteError) as info:
        load_suite(write_suite(tmp_path, {**SUITE, **change}))
    assert text in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith(str(tmp_path / "suite.json"))


@pytest.mark.parametrize("text, message", [
    ("[1, 2]", "top level: must be an object, got array"),
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
    check_suite(dict(pinned, settings=[{"name": "cut from frame 7", "start": "proxy", "drag_frame": 7}]), 8, 32, 32,
                (16, 16))
    late = dict(pinned, settings=[{"name": "cut from frame 8", "start": "proxy", "drag_frame": 8}])
    with pytest.raises(SuiteError, match=r"settings\[0\].drag_frame: 8 is not a frame of the 8 made"):
        check_suite(late, 8, 32, 32, (16, 16))


def test_a_loaded_suite_is_a_suite_file_itself(tmp_path):
    """Paths become absolute and trajectory files inline: the loaded suite reloads from anywhere unchanged."""
    suite = load_suite(BENCHMARKS / "general_metrics.json")
    again = load_suite(write_suite(tmp_path, suite))
    assert again == suite and [i["id"] for i in items(again)] == [i["id"] for i in items(suite)]


def test_evaluate_cli_rejects_a_bad_suite_before_loading_the_model(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import moft.front.cli as cli

    monkeypatch.setattr(cli, "_load", lambda model: pytest.fail("the model was loaded"))
    r = CliRunner().invoke(cli.app, ["evaluate", str(write_suite(tmp_path, {**SUITE, "requests": ["left"]})),
                                     "--out", str(tmp_path / "r.json")])
    assert r.exit_code == 2 and "requests[0]: must be an object" in r.output and "Traceback" not in r.output


def test_the_zoom_suite_asks_for_zooms_both_ways_on_seeds_no_other_suite_uses():
    """Its seeds are its own, but for zoom_keep.json: the same requests for issue 26's rows, on more seeds."""
    suite = load_suite(BENCHMARKS / "zoom.json")
    plans = check_suite(suite, 8, 32, 32, (16, 16))
    zooms = [[r.zoom for r in p["trajectory"].regions] for p in plans.values()]
    assert sorted(z for zs in zooms for z in zs) == [0.77, 0.77, 1.3, 1.3]
    assert {p["trajectory"].regions[0].mask == "all" for p in plans.values()} == {True, False}
    others = {s for f in BENCHMARKS.glob("*.json") if f.name not in ("zoom.json", "zoom_keep.json")
              for s in json.loads(f.read_text()).get("seeds", [])}
    assert not set(suite["seeds"]) & others
    keep = json.loads((BENCHMARKS / "zoom_keep.json").read_text())
    assert set(suite["seeds"]) < set(keep["seeds"]) and keep["requests"] == json.loads(
        (BENCHMARKS / "zoom.json").read_text())["requests"]


def test_no_tuning_suite_shares_a_seed_with_a_reporting_suite():
    """Tune on seeds you do not report: every seed of a tune_*.json is absent from the reporting suites."""
    seeds = lambda f: set(json.loads(f.read_text()).get("seeds", []))  # noqa: E731
    tuning = set().union(*(seeds(f) for f in BENCHMARKS.glob("tune_*.json")))
    for f in BENCHMARKS.glob("*.json"):
        if not f.name.startswith("tune_"):
            assert not seeds(f) & tuning, f.name


def test_the_lever_suites_load_with_the_new_guidance_fields(tmp_path):
    suite = load_suite(BENCHMARKS / "tune_levers.json")
    assert {s.get("optimizer", "sgd") for s in suite["settings"]} >= {"sgd", "adam", "normalized"}
    bad = {"prompts": ["a red disk"], "seeds": [0], "settings": [{"name": "x", "grad_every": "2"}],
           "requests": [{"name": "l", "region": "object", "direction": "left"}]}
    with pytest.raises(SuiteError, match=r"settings\[0\]\.grad_every: must be an integer"):
        load_suite(write_suite(tmp_path, bad))


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


def test_the_image_to_video_suites_report_control_goals_requests_and_tune_on_their_own_seeds():
    """goals_i2v.json: control_goals.json's 48 requests (prompts, seed, requests), rows that spell their settings (the
    Time-to-Move row is also what tuning chose as the model's moft.json default); tune_i2v.json: tuning seeds and
    prompt, every lever spelled."""
    from moft.method.settings import GUIDANCE_FIELDS
    from moft.models.pipeline import model_record

    goals, i2v = (json.loads((BENCHMARKS / f).read_text()) for f in ("control_goals.json", "goals_i2v.json"))
    assert {k: i2v[k] for k in ("prompts", "seeds", "requests")} == {k: goals[k] for k in ("prompts", "seeds", "requests")}
    assert len(i2v["prompts"]) * len(i2v["seeds"]) * len(i2v["requests"]) == 48
    assert "guidance" not in i2v and "target" not in i2v  # nothing laid over the model's defaults but the rows
    paper, ttm, tuned = i2v["settings"]
    unused = {"transfer", "drag_frame"}  # how a reference clip is copied (none here); the frame cut (each is the image)
    assert set(GUIDANCE_FIELDS) - unused <= set(paper)
    assert ttm["method"] == "cut-drag" and ttm["keep"] == "off" and ttm["release"] == 20 and ttm["steps"][0] == 3
    shipped = model_record("moft-tiny-wan-i2v").guidance
    assert all(shipped[k] == tuned[k] for k in ("method", "keep", "release", "start", "steps"))  # the tuned default
    tune, start = (load_suite(BENCHMARKS / f) for f in ("tune_i2v.json", "tune_i2v_start.json"))
    assert tune["seeds"] == [10, 11] and tune["prompts"] == ["a red disk standing still"] and len(tune["requests"]) == 8
    assert start["seeds"] == [10, 11, 12] and "a red disk standing still" in start["prompts"]
    assert not set(start["prompts"]) & set(i2v["prompts"]) and not set(start["seeds"]) & set(i2v["seeds"])
    assert set(GUIDANCE_FIELDS) - unused <= set(tune["guidance"])  # moft.json cannot change a tuning row
    assert set(GUIDANCE_FIELDS) - unused - {"point_region"} <= set(start["guidance"])  # (object drags: no point region)
    record = model_record("moft-tiny-wan-i2v")
    for suite in (tune, start, load_suite(BENCHMARKS / "goals_i2v.json")):
        check_suite(with_model_defaults(suite, record), 9, 32, 32, (16, 16), record)
