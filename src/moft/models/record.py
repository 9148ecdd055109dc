"""The model-folder record: a typed, versioned ``moft.json`` (as diffusers' ``config.json`` is to a model).

Example:
    >>> from moft.models.record import ModelRecord
    >>> rec = ModelRecord.from_dict({"prompt": "a red disk", "guidance_scale": 4.0, "frames": 8})
    >>> rec.guidance_scale, rec.frames, rec.to_dict()
    (4.0, 8, {'version': 1, 'prompt': 'a red disk', 'guidance_scale': 4.0, 'frames': 8})
    >>> ModelRecord.from_dict(rec.to_dict()) == rec
    True
    >>> ModelRecord.from_dict({"guidance_scal": 4.0}, source="m/moft.json")
    Traceback (most recent call last):
    moft.models.record.RecordError: m/moft.json: unknown field 'guidance_scal' (did you mean 'guidance_scale'?)

A model folder may hold a ``moft.json`` beside ``model_index.json``: the defaults moft runs the model
with (prompt, CFG scale, video size and frame rate, capture site, guidance settings and target kind)
and a few records of how it was made (``training``, ``guidance_chosen_by``, ``locate``), kept as
opaque objects. ``moft.models.loading.load_pipeline`` reads it once, before the weights, and
attaches it to the pipeline as ``pipe.moft_record``; ``moft.models.pipeline.pipeline_record``
returns it (reading the folder a pipeline came from once if it was loaded another way), and
``moft.models.pipeline.model_record`` reads it by model name before anything loads.

The ``guidance`` entry holds ``GuidanceConfig`` fields; its keys and values are checked where the
run settings are resolved (``moft.method.settings.resolve_settings``), which names this file.
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
from dataclasses import dataclass, field, fields
from pathlib import Path

RECORD_VERSION = 1  # bumped when a field changes meaning; older records are read, newer refused


class RecordError(ValueError):
    """A ``moft.json`` that cannot be read: not JSON, not an object, an unknown field or a wrong type (one line)."""


def _entry(default, types: tuple, text: str, help: str, *, lo: float | None = None):
    """A record field: its accepted JSON types, how to say them, what it means, and a lower bound."""
    return field(default=default, metadata={"types": types, "text": text, "help": help, "lo": lo})


_NUM, _INT, _STR, _OBJ, _NONE = (numbers.Real,), (numbers.Integral,), (str,), (dict,), (type(None),)


@dataclass(frozen=True)
class ModelRecord:
    """The fields of ``moft.json`` (every one optional; None: not given).

    Attributes:
        version: format version (``RECORD_VERSION``; absent in files written before it: 1).
        prompt: the default prompt (``moft control`` without ``--prompt``).
        guidance_scale: the CFG scale the model is run with.
        frames / height / width: the video size the model makes.
        fps: frame rate of its training clips (reading any clip at the model's speed).
        site: capture site (``moft locate --write-defaults``).
        point_site / point_timestep: where the point loss of point drag reads its features, and the
            timestep it was measured best at (``scripts/point_sites.py``); point_sites: that measurement (opaque).
        guidance: ``GuidanceConfig`` fields (the model's tuned guidance).
        tracks: ``GuidanceConfig`` fields a point-track run takes over ``guidance`` (chosen on
            ``benchmarks/tune_point_drag.json``; ``moft.method.settings.track_settings``).
        target: how a trajectory becomes a target: ``curves`` or ``drag``.
        training / guidance_chosen_by / tracks_chosen_by / locate / channels_fit_seconds: how the model and its
            defaults were made (opaque, kept as written).
        source: the file it was read from (not a field of the file).
    """

    version: int = _entry(RECORD_VERSION, _INT, "an integer >= 1", "format version", lo=1)
    prompt: str | None = _entry(None, _STR + _NONE, "a string", "default prompt")
    guidance_scale: float | None = _entry(None, _NUM + _NONE, "a finite number >= 0", "CFG scale", lo=0)
    frames: int | None = _entry(None, _INT + _NONE, "an integer >= 1", "video frames", lo=1)
    height: int | None = _entry(None, _INT + _NONE, "an integer >= 1", "video height (px)", lo=1)
    width: int | None = _entry(None, _INT + _NONE, "an integer >= 1", "video width (px)", lo=1)
    fps: float | None = _entry(None, _NUM + _NONE, "a finite number > 0", "training clips' frame rate", lo=1e-9)
    site: str | None = _entry(None, _STR + _NONE, "a string", "capture site")
    point_site: str | None = _entry(None, _STR + _NONE, "a string", "point-feature (DIFT) site")
    point_timestep: int | None = _entry(None, _INT + _NONE, "an integer >= 0", "point site's measured timestep", lo=0)
    point_sites: dict | None = _entry(None, _OBJ + _NONE, "an object", "the point-site measurement (opaque)")
    guidance: dict = _entry(None, _OBJ + _NONE, "an object", "GuidanceConfig fields")
    tracks: dict | None = _entry(None, _OBJ + _NONE, "an object", "GuidanceConfig fields of point-track runs")
    target: str | None = _entry(None, _STR + _NONE, "a string", "target kind (curves or drag)")
    training: dict | None = _entry(None, _OBJ + _NONE, "an object", "training record (opaque)")
    guidance_chosen_by: dict | None = _entry(None, _OBJ + _NONE, "an object", "tuning record (opaque)")
    tracks_chosen_by: dict | None = _entry(None, _OBJ + _NONE, "an object", "point-drag tuning record (opaque)")
    locate: dict | None = _entry(None, _OBJ + _NONE, "an object", "moft locate's recommendation (opaque)")
    channels_fit_seconds: float | None = _entry(None, _NUM + _NONE, "a number", "time of the channel fit", lo=0)
    source: str | None = field(default=None, compare=False, repr=False, metadata={"internal": True})

    def __post_init__(self):
        if self.guidance is None:
            object.__setattr__(self, "guidance", {})

    @classmethod
    def keys(cls) -> list[str]:
        """The field names a ``moft.json`` may hold."""
        return [f.name for f in fields(cls) if not f.metadata.get("internal")]

    @classmethod
    def from_dict(cls, data, source: str = "moft.json") -> "ModelRecord":
        """A record from a parsed ``moft.json``; strict: an unknown field or a wrong type is a ``RecordError``
        naming ``source`` and the field (with a close known name, if any)."""
        if not isinstance(data, dict):
            raise RecordError(f"{source}: must be a JSON object, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls) if not f.metadata.get("internal")}
        for key, value in data.items():
            if key not in known:
                near = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else f" (known: {', '.join(known)})"
                raise RecordError(f"{source}: unknown field {key!r}{hint}")
            meta = known[key].metadata
            ok = isinstance(value, meta["types"]) and not isinstance(value, bool)
            if ok and isinstance(value, numbers.Real) and not (math.isfinite(value) and (
                    meta["lo"] is None or value >= meta["lo"])):
                ok = False
            if not ok:
                raise RecordError(f"{source}: {key}: must be {meta['text']}, got {json.dumps(value)[:40]}")
        version = data.get("version", RECORD_VERSION)
        if version > RECORD_VERSION:
            raise RecordError(f"{source}: version {version} is newer than this moft reads ({RECORD_VERSION}); "
                              f"upgrade moft")
        return cls(**data, source=str(source))

    def to_dict(self) -> dict:
        """The record as ``moft.json`` holds it (fields that are None or empty left out; ``version`` always)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if not f.metadata.get("internal") and value is not None and value != {}:
                out[f.name] = value
        return out

    @classmethod
    def read(cls, path: str | Path) -> "ModelRecord":
        """The record of a ``moft.json`` file; a missing file is the empty record.

        Raises:
            RecordError: an empty file, invalid JSON, or a field ``from_dict`` refuses (one line).
        """
        path = Path(path)
        if not path.is_file():
            return cls(source=str(path))
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RecordError(f"{path}: cannot read it ({type(exc).__name__})") from None
        if not text.strip():
            raise RecordError(f"{path}: empty; write a JSON object (or delete the file)")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecordError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno})") from None
        except RecursionError:
            raise RecordError(f"{path}: not valid JSON (nested too deeply)") from None
        return cls.from_dict(data, source=str(path))
