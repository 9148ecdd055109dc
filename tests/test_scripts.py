"""The repo's scripts: the pure parts that turn measured reports into README tables."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quality_report():
    rows = [{"coherent": i < 3, "text_ok": i < 1} for i in range(4)]
    return {"model": "m", "guidance_scale": 4.0, "steps": 25,
            "sample_quality": {"samples": 4, "coherent_fraction": 0.75, "present_fraction": 1.0,
                               "text_direction_fraction": 0.25, "median_r2": 0.9, "median_speed_px": 1.5,
                               "rows": rows},
            "moft_decoding": {"videos": 16, "timestep": 199, "accuracy_raw": 0.25,
                              "accuracy_moft_all_channels": 0.5, "accuracy_moft_motion_channels": 0.375}}


def test_quality_markdown_reports_every_bar_with_counts(quality_report):
    md = _load("model_quality").markdown(quality_report)
    assert "75% (3/4)" in md and "25% (1/4)" in md and "100% (4/4)" in md
    assert "| 50% |" in md and "| 25% |" in md and "| 38% |" in md
    assert "t = 199" in md


def test_quality_markdown_without_decoding(quality_report):
    report = {k: v for k, v in quality_report.items() if k != "moft_decoding"}
    md = _load("model_quality").markdown(report)
    assert "decoding" not in md and "75% (3/4)" in md


def test_results_tables_fill_replaces_only_the_block(tmp_path, monkeypatch):
    tables = _load("results_tables")
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "results" / "a.md").write_text("| x |\n")
    monkeypatch.setattr(tables, "ROOT", tmp_path)
    text = "head\n<!-- results -->\nold\n<!-- /results -->\ntail\n"
    out, n = tables.fill(text, "results", ["a", "missing"])
    assert n == 1
    assert out == "head\n<!-- results -->\n<!-- from docs/results/a.md -->\n| x |\n<!-- /results -->\ntail\n"
    assert tables.fill(out, "results", ["a"])[0] == out  # idempotent


def test_results_tables_cover_the_readme_blocks():
    tables = _load("results_tables")
    readme = (SCRIPTS.parent / "README.md").read_text()
    for block in tables.BLOCKS:
        assert f"<!-- {block} -->" in readme and f"<!-- /{block} -->" in readme


def test_train_mix_parses_kind_weights():
    import argparse

    train = _load("train_shipped_model")
    assert train._mix("object=0.6, pan=0.4") == {"object": 0.6, "pan": 0.4}
    with pytest.raises(argparse.ArgumentTypeError, match="kind=weight"):
        train._mix("object")
    json.dumps(train._mix("still=1"))  # recorded in the checkpoint's phases as JSON


@pytest.mark.parametrize("decided_by_word, expected", [(True, 1.0), (False, 0.0)])
def test_text_effect_splits_motion_variance_between_word_and_noise(monkeypatch, decided_by_word, expected):
    import types

    import numpy as np

    mq = _load("model_quality")
    step = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}

    def fake_sample(pipe, prompt, seed, **kw):
        word = prompt.rsplit(" ", 1)[1]
        v = np.array(step[word] if decided_by_word else step[list(step)[seed % 4]], dtype=float)
        return types.SimpleNamespace(frames=np.arange(8)[:, None] * v)  # the "video" is its own path

    monkeypatch.setattr(mq, "sample", fake_sample)
    monkeypatch.setattr(mq, "track_centroid", lambda frames, color: frames)
    out = mq.text_effect(None, seeds=4, seed=0, guidance_scale=4.0, steps=2)
    assert out["seeds"] == 4
    assert out["variance_explained_by_word"] == pytest.approx(expected)
