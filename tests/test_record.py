"""The model-folder record (``moft.json``): typed, strict, versioned, read once with the pipeline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from moft.front.cli import app
from moft.models.loading import SHIPPED_DIR, load_pipeline
from moft.models.pipeline import model_record, pipeline_record
from moft.models.record import RECORD_VERSION, ModelRecord, RecordError

EXAMPLES = Path(__file__).parents[1] / "examples"


@pytest.mark.parametrize("name", ["moft-tiny", "moft-tiny-wan"])
def test_the_shipped_records_round_trip_through_to_dict(name):
    """Every field of a shipped moft.json survives from_dict -> to_dict (the file's own keys plus the version)."""
    data = json.loads((SHIPPED_DIR / name / "moft.json").read_text())
    rec = ModelRecord.from_dict(data)
    assert rec.to_dict() == dict(data, version=RECORD_VERSION)
    assert ModelRecord.from_dict(rec.to_dict()) == rec
    assert rec.guidance["optimizer"] == "adam" and rec.training == data["training"]  # opaque entries kept whole


@pytest.mark.parametrize("data, text", [
    ({"guidance_scal": 4.0}, "unknown field 'guidance_scal' (did you mean 'guidance_scale'?)"),
    ({"promt": "x"}, "did you mean 'prompt'?"),
    ({"zzz": 1}, "unknown field 'zzz' (known: version, prompt"),
    ({"guidance_scale": "4"}, "guidance_scale: must be a finite number >= 0"),
    ({"guidance_scale": float("nan")}, "guidance_scale: must be a finite number"),
    ({"frames": 8.5}, "frames: must be an integer >= 1"),
    ({"frames": True}, "frames: must be an integer"),
    ({"frames": 0}, "frames: must be an integer >= 1"),
    ({"guidance": [1, 2]}, "guidance: must be an object"),
    ({"version": RECORD_VERSION + 1}, f"version {RECORD_VERSION + 1} is newer"),
    ([1], "must be a JSON object, got list"),
])
def test_from_dict_is_strict_and_names_the_file_and_the_field(data, text):
    with pytest.raises(RecordError) as info:
        ModelRecord.from_dict(data, source="folder/moft.json")
    assert str(info.value).startswith("folder/moft.json: ") and text in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text, message", [("", "empty"), ("{", r"not valid JSON \(line 1"), ("[1]", "JSON object")])
def test_a_malformed_file_is_one_line(tmp_path, text, message):
    (tmp_path / "moft.json").write_text(text)
    with pytest.raises(RecordError, match=message):
        ModelRecord.read(tmp_path / "moft.json")


def test_a_missing_file_is_the_empty_record(tmp_path):
    rec = ModelRecord.read(tmp_path / "moft.json")
    assert rec == ModelRecord() and rec.to_dict() == {"version": RECORD_VERSION} and rec.guidance == {}


def test_load_pipeline_reads_the_record_once_and_attaches_it(tmp_path, monkeypatch):
    calls = []
    real = ModelRecord.read.__func__

    def counted(cls, path):
        calls.append(path)
        return real(cls, path)

    monkeypatch.setattr(ModelRecord, "read", classmethod(counted))
    pipe = load_pipeline("moft-tiny-wan")
    assert pipe.moft_record.frames == 9 and len(calls) == 1
    for _ in range(3):
        assert pipeline_record(pipe) is pipe.moft_record
    assert len(calls) == 1


@pytest.mark.parametrize("text", ["", "{\"guidance_scale\": ", "{\"guidance_scale\": \"high\"}"])
def test_the_cli_refuses_a_malformed_moft_json_in_one_line_before_loading(tmp_path, text):
    folder = tmp_path / "m"
    shutil.copytree(SHIPPED_DIR / "moft-tiny", folder)
    (folder / "moft.json").write_text(text)
    out = tmp_path / "o.gif"
    res = CliRunner().invoke(app, ["control", str(EXAMPLES / "object_left.json"),
                                   "--model", str(folder), "--out", str(out)])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "moft.json" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # nothing written
    with pytest.raises(RecordError):
        model_record(folder)
