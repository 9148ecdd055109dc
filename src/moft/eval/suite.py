"""Evaluation suite files: the schema, checked completely before any model loads.

Example:
    >>> suite = load_suite("benchmarks/general_metrics.json")             # checked before any model loads
    >>> sorted({protocol(r) for r in suite["requests"]})
    ['motion-transfer', 'trajectory']
    >>> plans = check_suite(suite, 8, 32, 32, (16, 16))                   # and against a model's size
    >>> plans[0]["trajectory"].frames
    8

Suite file (JSON)::

    {"name": "smoke", "steps": 25, "guidance_scale": 4.0,
     "prompts": ["a red disk standing still"], "seeds": [0, 1],
     "requests": [{"name": "box left", "trajectory": {"version": 1, "regions": [
                      {"mask": {"box": [0.3, 0.3, 0.7, 0.7]}, "direction": "left", "speed": 0.05}]}},
                  {"name": "curve", "trajectory": "curve.json"},
                  {"name": "copy clip", "reference_clip": "clips/pan.mp4", "mask": "all"},
                  {"name": "left", "region": "object", "direction": "left", "speed": 0.05},
                  {"name": "pan right (ref)", "region": "all", "reference": {"direction": "right"}},
                  {"name": "apart", "objects": [{"color": "first", "direction": "left"},
                                                {"color": "second", "direction": "right"}]}],
     "settings": [{"name": "MOFT"}, {"name": "+CR", "features": "cr"}, {"name": "no K/V", "shared_kv": false}]}

A request's keys say its protocol (``protocol``):

* **trajectory** (general metrics, any model and prompt): ``"trajectory"``, a file or an inline
  trajectory document (``moft.io.trajectory``: box / circle / polygon / mask image / ``"all"``
  regions with points, a direction or segments).
* **motion-transfer** (general metrics): ``"reference_clip"``, a clip to copy the motion of, with an
  optional ``"mask"`` (default ``"all"``).
* **synthetic-object** (the shipped model's coloured organisms): ``"region"`` (``object`` or ``all``)
  with a ``"direction"`` (and ``"speed"``) or a synthetic ``"reference"`` pan, or ``"objects"``, one
  colour and direction each; the object is found by the colour word of the prompt
  (``moft.eval.objects``), so every prompt must name one.

Relative paths (trajectory files, clips, mask images) are read from the suite file's folder.
Top-level keys: ``name``, ``description``, ``steps`` (DDIM steps), ``guidance_scale``, ``prompts``,
``seeds``, ``requests``, ``settings``, ``guidance``, ``target``; anything else is an error. Each
field is checked with the shared kit (``moft.io.validate``): one line naming the field path.

Setting keys: ``features`` (``moft`` | ``cr`` | ``vanilla``; vanilla needs a reference),
``fraction`` (motion-channel share), ``gain``, ``target`` (how a direction request becomes a
target: ``curves``, the paper's region-mean synthesis, or ``drag``, the inverted drag proxy of the
source, ``moft.method.targets.drag_target``), and any ``GuidanceConfig`` field (``steps`` as
[start, end]). A suite-level ``"guidance"`` object sets the base for every setting and ``"target"``
the default target kind; ``moft evaluate`` puts the model's own defaults (``moft.json``) under them
(``with_model_defaults``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .objects import prompt_color
from ..io.synthetic import COLORS, DIRECTIONS
from ..io.trajectory import MAX_FRAMES, TrajectoryError, load_trajectory, parse_trajectory
from ..io.validate import Fields
from ..io.video import VideoError, read_clip, read_video
from ..method.settings import (GUIDANCE_FIELDS, MAX_SEED, MAX_STEPS, GuidanceConfig, SettingsError, record_layer,
                               resolve_settings)
from ..method.targets import TARGET_KINDS
from ..models.pipeline import OFFICIAL_CFG

SUITE_KEYS = {"name", "description", "steps", "guidance_scale", "prompts", "seeds", "requests", "settings",
              "guidance", "target"}
SETTING_KEYS = {"name", "features", "fraction", "gain", "target"} | set(GUIDANCE_FIELDS)
REQUEST_KEYS = {  # per protocol
    "synthetic-object": {"name", "region", "direction", "speed", "reference", "objects"},
    "trajectory": {"name", "trajectory"},
    "motion-transfer": {"name", "reference_clip", "mask"},
}
FEATURES = ("moft", "cr", "vanilla")


class SuiteError(ValueError):
    """A malformed suite file (one-line message naming the field)."""


_check = Fields(SuiteError)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def protocol(request: dict) -> str:
    """A request's protocol: ``trajectory`` or ``motion-transfer`` (general metrics), or ``synthetic-object``.

    Example:
        >>> protocol({"name": "x", "reference_clip": "clip.mp4"})
        'motion-transfer'
    """
    if "trajectory" in request:
        return "trajectory"
    if "reference_clip" in request:
        return "motion-transfer"
    return "synthetic-object"


def load_suite(path: str | Path) -> dict:
    """Read and check a suite file completely (before any model is loaded).

    Example:
        >>> suite = load_suite("benchmarks/general_metrics.json")
        >>> [protocol(r) for r in suite["requests"]][:2]
        ['trajectory', 'trajectory']

    Trajectories (files or inline) are parsed and stored inline (image-mask and clip paths made
    absolute), so the loaded suite no longer depends on the folder it came from.

    Raises:
        SuiteError: a one-line message naming the file and the field.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SuiteError(f"{path}: no such suite file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read the suite file ({type(exc).__name__})") from None
    try:
        suite = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:
        raise SuiteError(f"{path}: not valid JSON ({exc})") from None
    try:
        return _check_suite(suite, path)
    except SuiteError as exc:
        raise SuiteError(f"{path}: {exc}") from None


def _check_suite(suite, path: Path) -> dict:
    _check.object(suite, "top level", allowed=SUITE_KEYS)
    if "name" in suite:
        _check.string(suite["name"], "name")
    if "description" in suite:
        _check.string(suite["description"], "description", allow_empty=True)
    steps = _check.integer(suite.get("steps", 25), "steps", 1, MAX_STEPS)
    _check.number(suite.get("guidance_scale", OFFICIAL_CFG), "guidance_scale", 0.0, 1e4)
    _check.string(suite.get("target", "curves"), "target", choices=TARGET_KINDS)
    guidance = _check.object(suite.get("guidance", {}), "guidance", allowed=GUIDANCE_FIELDS)
    _check_guidance(guidance, "guidance", steps, check_range="steps" in guidance)
    for i, p in enumerate(_check.array(suite.get("prompts"), "prompts", what="prompt")):
        _check.string(p, f"prompts[{i}]")
    for i, seed in enumerate(_check.array(suite.get("seeds"), "seeds", what="seed")):
        _check.integer(seed, f"seeds[{i}]", 0, MAX_SEED)
    requests = _check.array(suite.get("requests"), "requests", what="request")
    for i, r in enumerate(requests):
        requests[i] = _check_request(r, f"requests[{i}]", path.parent)
    for i, s in enumerate(_check.array(suite.get("settings"), "settings", what="setting")):
        _check_setting(s, f"settings[{i}]", steps, guidance)
    if any(protocol(r) == "synthetic-object" for r in requests):
        for i, p in enumerate(suite["prompts"]):
            if prompt_color(p) is None:
                raise _check.fail(f"prompts[{i}]", f"must name one of the colours {', '.join(COLORS)} "
                                                  f"(the synthetic-object requests find the object by its colour)")
    suite["requests"] = requests
    suite.setdefault("name", path.stem)
    return suite


def _check_setting(s, where: str, steps: int, guidance: dict) -> None:
    """One row of ``settings``: its own keys, then its guidance fields over the suite's ``guidance``."""
    _check.object(s, where, allowed=SETTING_KEYS)
    _check.string(s.get("name"), f"{where}.name")
    _check.string(s.get("features", "moft"), f"{where}.features", choices=FEATURES)
    _check.string(s.get("target", "curves"), f"{where}.target", choices=TARGET_KINDS)
    if s.get("fraction") is not None:
        _check.number(s["fraction"], f"{where}.fraction", 0.0, 1.0, lo_open=True)
    if s.get("gain") is not None:
        _check.number(s["gain"], f"{where}.gain", -1e6, 1e6)
    _check_guidance(_guidance_fields(s), where, steps, base=guidance)


def _guidance_fields(layer: dict) -> dict:
    """The ``GuidanceConfig`` fields of a suite's ``guidance`` object or of a setting row."""
    return {k: v for k, v in layer.items() if k in GUIDANCE_FIELDS}


def suite_layers(suite: dict, setting: dict | None = None) -> tuple[dict, ...]:
    """A suite's settings layers for ``resolve_settings``: its top level (``guidance``, ``guidance_scale``,
    ``target``), then a setting row's guidance fields and ``target``.

    Example:
        >>> suite_layers({"guidance": {"iterations": 3}, "target": "drag"}, {"name": "x", "step_size": 0.1})
        ({'iterations': 3, 'target_kind': 'drag'}, {'step_size': 0.1})
    """
    top = dict(suite.get("guidance") or {})
    top.update({k: suite[k] for k in ("guidance_scale",) if k in suite})
    top.update({"target_kind": suite["target"]} if "target" in suite else {})
    if setting is None:
        return (top,)
    row = _guidance_fields(setting)
    row.update({"target_kind": setting["target"]} if setting.get("target") is not None else {})
    return top, row


def with_model_defaults(suite: dict, record) -> dict:
    """The suite with the model folder's settings (``record_layer``) under its own top level: what
    ``moft evaluate`` runs and reports, so a report says every setting its rows used.

    Example:
        >>> from moft.models.pipeline import model_record
        >>> s = with_model_defaults({"guidance": {"iterations": 3}, "settings": []}, model_record("moft-tiny"))
        >>> s["guidance"]["iterations"], s["guidance"]["optimizer"], s["target"], s["guidance_scale"]
        (3, 'adam', 'drag', 4.0)
    """
    layer = record_layer(record)
    out = dict(suite, guidance=dict({k: v for k, v in layer.items() if k in GUIDANCE_FIELDS}, **suite.get("guidance", {})))
    for key, name in (("target", "target_kind"), ("guidance_scale", "guidance_scale")):
        if key not in suite and name in layer:
            out[key] = layer[name]
    return out


def _check_guidance(fields: dict, where: str, steps: int, base: dict | None = None, check_range: bool = True,
                    record=None, frames: int | None = None) -> GuidanceConfig:
    """A layer of guidance fields over ``base`` (and a model's ``record``), checked by ``GuidanceConfig``
    itself, then the guided range and, given the model's ``frames``, the frame a drag is cut from."""
    try:
        g = resolve_settings(record, dict(base or {}), fields).guidance
        if check_range:
            g.check_schedule(steps)
        if frames is not None:
            g.check_frames(frames)
    except SettingsError as exc:
        name = getattr(exc, "field", None)
        text = f"{where}.{name}: {exc.problem}" if name is not None else f"{where}: {exc}"
        raise SuiteError(text) from None
    return g


def _check_request(r, where: str, base: Path) -> dict:
    """One request, checked against its protocol's keys; trajectories inline, paths absolute."""
    _check.object(r, where, allowed=set().union(*REQUEST_KEYS.values()))
    kind = protocol(r)
    _check.object(r, where, allowed=REQUEST_KEYS[kind])
    _check.string(r.get("name"), f"{where}.name")
    if kind == "trajectory":
        return dict(r, trajectory=_inline_trajectory(r["trajectory"], f"{where}.trajectory", base))
    if kind == "motion-transfer":
        clip = Path(_check.string(r["reference_clip"], f"{where}.reference_clip"))
        clip = clip if clip.is_absolute() else base / clip
        try:
            read_video(clip, max_frames=1)
        except VideoError as exc:
            raise _check.fail(f"{where}.reference_clip", str(exc)) from None
        mask = _mask_trajectory(r.get("mask", "all"), 2, f"{where}.mask", base).regions[0].mask
        return dict(r, reference_clip=str(clip.resolve()), mask=mask)
    if "objects" in r:
        for j, o in enumerate(_check.array(r["objects"], f"{where}.objects", what="object")):
            _check.object(o, f"{where}.objects[{j}]", required=("color", "direction"))
            _check.string(o["color"], f"{where}.objects[{j}].color", choices=(*COLORS, "first", "second"))
            _check.string(o["direction"], f"{where}.objects[{j}].direction", choices=DIRECTIONS)
        return r
    if "region" not in r:
        raise _check.fail(where, "missing key 'region' ('object' or 'all'), or give a 'trajectory' or a 'reference_clip'")
    _check.string(r["region"], f"{where}.region", choices=("object", "all"))
    if "reference" in r:
        _check.object(r["reference"], f"{where}.reference", required=("direction",))
    if "direction" in r:
        _check.string(r["direction"], f"{where}.direction", choices=DIRECTIONS)
    elif "reference" in r:
        _check.string(r["reference"]["direction"], f"{where}.reference.direction", choices=DIRECTIONS)
    else:
        raise _check.fail(where, "missing key 'direction' (or a 'reference' with one)")
    if "speed" in r:
        _check.number(r["speed"], f"{where}.speed", 0.0, 1.0, lo_open=True)
    return r


def _inline_trajectory(value, where: str, base: Path) -> dict:
    """A trajectory file or inline document, checked, as an inline document with absolute paths."""
    try:
        if isinstance(value, str):
            file = Path(value) if Path(value).is_absolute() else base / value
            traj = load_trajectory(file, default_frames=MAX_FRAMES)
            doc = json.loads(file.read_text(encoding="utf-8-sig"))
        else:
            traj = parse_trajectory(value, default_frames=MAX_FRAMES, base_dir=base, source=where)
            doc = value
    except TrajectoryError as exc:
        raise SuiteError(f"{where}: {exc}") from None
    out = traj.to_dict()
    if "frames" not in doc:  # checked against the model's frame count at run time (check_suite)
        del out["frames"]
    return out


def _mask_trajectory(mask, frames: int, where: str, base: Path | None = None):
    """A one-region trajectory holding only a mask (motion transfer: the motion comes from the clip)."""
    try:
        return parse_trajectory({"version": 1, "frames": frames, "regions": [{"mask": mask, "points": [[0.5, 0.5]] * 2}]},
                                base_dir=base, source=where)
    except TrajectoryError as exc:
        raise SuiteError(str(exc).replace("regions[0].mask", where)) from None


def guidance_settings(setting: dict, base: dict | None = None, record=None) -> tuple[GuidanceConfig, dict]:
    """A setting's ``GuidanceConfig`` (``resolve_settings`` of the model's ``record``, the suite's base
    guidance and the row) and its other keys (``features``, ``fraction``, ``gain``, ``target``)."""
    g = resolve_settings(record, dict(base or {}), _guidance_fields(setting)).guidance
    return g, {k: setting.get(k) for k in ("features", "fraction", "gain", "target")}


def fit_reference_clip(path: str | Path, frames: int, height: int, width: int) -> np.ndarray:
    """A reference clip as the model's frames, by the clip rule of ``moft.io.video.read_clip``.

    Example:
        >>> ref = fit_reference_clip("clip.mp4", 8, 32, 32)   # doctest: +SKIP

    Raises:
        SuiteError: an unreadable clip or one with fewer frames than the model makes.
    """
    try:
        return read_clip(path, frames, size=(height, width)).frames  # (F, H, W, 3) uint8
    except VideoError as exc:
        raise SuiteError(str(exc)) from None


def check_suite(suite: dict, frames: int, height: int, width: int, latent: tuple[int, int], record=None) -> dict:
    """What every general request needs at the model's size, checked before any sampling.

    Example:
        >>> plans = check_suite(load_suite("benchmarks/general_metrics.json"), 8, 32, 32, (16, 16))
        >>> plans[0]["trajectory"].frames
        8

    Returns:
        ``{request index: {"trajectory": Trajectory, "reference": (F, H, W, 3) uint8 or None}}``
        for the requests of the general protocols.

    Raises:
        SuiteError: a trajectory of another frame count, a region that covers no pixel of the
            latent grid, a clip too short or unreadable, a setting's ``drag_frame`` past the frames.
    """
    plans = {}
    for i, req in enumerate(suite["requests"]):
        kind, where = protocol(req), f"requests[{i}] ({req['name']})"
        if kind == "synthetic-object":
            continue
        if kind == "trajectory":
            try:
                traj = parse_trajectory(req["trajectory"], default_frames=frames, source=where)
            except TrajectoryError as exc:
                raise SuiteError(f"{where}: {exc}") from None
            ref = None
        else:
            traj = _mask_trajectory(req["mask"], frames, where)
            ref = fit_reference_clip(req["reference_clip"], frames, height, width)
        if traj.frames != frames:
            raise SuiteError(f"{where}: the trajectory has {traj.frames} frames, the model makes {frames}")
        try:
            traj.masks(*latent), traj.masks(height, width)
        except TrajectoryError as exc:
            raise SuiteError(f"{where}: {exc}") from None
        plans[i] = {"trajectory": traj, "reference": ref}
    for i, s in enumerate(suite["settings"]):
        _check_guidance(_guidance_fields(s), f"settings[{i}]", int(suite.get("steps", 25)), base=suite.get("guidance"),
                        record=record, frames=frames)
    return plans
