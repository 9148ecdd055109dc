"""Evaluation suites: run prompts x seeds x motion requests x settings, score them, write a report.

Example:
    >>> from moft.eval.evaluate import load_suite, run_suite, summarise
    >>> suite = load_suite("benchmarks/general_metrics.json")             # checked before any model loads
    >>> rows = run_suite(pipe, suite, "runs/general", channels)           # doctest: +SKIP
    >>> summarise(rows)[0]["motion_fidelity_lk"]                          # doctest: +SKIP

Workflow per item (the paper's T2V protocol, §5.1): generate the unguided *source* video of
(prompt, seed); find the prompt's object in it (colour tracker) and put a box region around it
(or take the whole frame for a camera pan); ask for a motion (a direction, or a reference video's
motion); generate the guided video from the same noise; track the object and score it against the
request. The unguided source scored against the same request is the baseline row. Besides the
verdict (direction success) each row records what guidance did to the object's net motion against
that source (``moft.eval.metrics.steering``): ``toward_px``, the displacement it added along the
request, and ``motion_kept``, the guided net length over the source's. Over requests in opposite
directions, damping cancels out of the mean ``toward_px``; what remains is steering.

Two protocols:

* **general** (any model, any prompt): a request names its region and motion explicitly, as a
  trajectory (``"trajectory"``: a file or an inline trajectory document, ``moft.trajectory``:
  box / circle / polygon / mask image / ``"all"`` regions with points, a direction or segments),
  or gives a reference clip to copy the motion of (``"reference_clip"``, motion transfer, with an
  optional ``"mask"``). Scored with the general metrics of ``moft.eval.metrics``: LK point tracks
  inside the frame-0 region against the requested tracks (Motion Fidelity, ObjMC-style distance,
  direction, mean distance) or against the reference clip's LK tracks (Motion Fidelity), camera
  motion as the median dense flow, PSNR/SSIM against the unguided source outside the regions.
  A region with a ``zoom`` adds ``zoom_success_lk`` and ``zoom_achieved_lk`` (``moft.eval.metrics.zoom_scale``
  of its tracks). Metric names say ``lk``/``flow``: they are not CoTracker figures.
* **synthetic-object** (the shipped model's coloured organisms): the object is found by the
  colour word of the prompt and followed by its colour centroid (paper T2V protocol, §5.1).

In both, each (prompt, seed, request) first makes the unguided *source* video; each setting then
makes the guided video from the same noise. The unguided source scored against the same request
is the baseline row. Besides the verdict (direction success) each row records what guidance did
to the object's net motion against that source (``moft.eval.metrics.steering``): ``toward_px``, the
displacement it added along the request, and ``motion_kept``, the guided net length over the
source's. Over requests in opposite directions, damping cancels out of the mean ``toward_px``;
what remains is steering. Every row with a background also says whether the guided video has a
glitch frame there (``glitch``, ``moft.eval.metrics.glitch``: a frame-to-frame change far above the
source's). Rows are strict JSON: a metric that cannot be measured is ``null`` and
``null_because`` says why.

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

The last three requests are of the synthetic-object protocol and need a colour word in every
prompt. Relative paths (trajectory files, clips, mask images) are read from the suite file's
folder. Top-level keys: ``name``, ``description``, ``steps`` (DDIM steps), ``guidance_scale``,
``prompts``, ``seeds``, ``requests``, ``settings``, ``guidance``, ``target``; anything else is an
error, and ``load_suite`` checks every field before any model is loaded.

Setting keys: ``features`` (``moft`` | ``cr`` | ``vanilla``; vanilla needs a reference),
``fraction`` (motion-channel share), ``target`` (how a direction request becomes a target:
``curves``, the paper's region-mean synthesis, or ``drag``, the inverted drag proxy of the source,
``moft.method.targets.drag_target``), and any ``GuidanceConfig`` field (``steps`` as [start, end]).
A suite-level ``"guidance"`` object sets the base for every setting and ``"target"`` the default
target kind; ``moft evaluate`` puts the model's own defaults (``moft.json``) under them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import numbers
import time
from pathlib import Path

import numpy as np
import torch

from .metrics import (camera_motion, direction_success, frame_change, glitch, mean_path, motion_fidelity, objmc, psnr,
                      region_tracks, request_tracks, split, ssim, steering, track_centroid, track_points,
                      trajectory_error, zoom_scale, zoom_success)
from ..method.sampler import GuidanceDiverged, sample
from ..method.settings import (GUIDANCE_FIELDS, MAX_SEED, MAX_STEPS, GuidanceConfig, SettingsError, record_layer,
                               resolve_settings)
from ..models.pipeline import OFFICIAL_CFG, default_video_size, denoiser, pipeline_record, vae_scale
from ..io.synthetic import COLORS, DIRECTIONS, make_clip
from ..io.outputs import atomic_write_text
from ..io.video import VideoError, read_clip, read_video
from ..method.control_target import build_target
from ..method.drag import drag_video, region_affine, swept_masks
from ..method.keep import LatentLog, keep_plan
from ..method.targets import TARGET_KINDS, Target, TargetError
from ..io.trajectory import MAX_FRAMES, TrajectoryError, load_trajectory, parse_trajectory

# bumped whenever run_item scores differently, so work folders never mix rows of two scorers
SCORER_VERSION = 5
SUITE_KEYS = {"name", "description", "steps", "guidance_scale", "prompts", "seeds", "requests", "settings",
              "guidance", "target"}
SETTING_KEYS = {"name", "features", "fraction", "gain", "target"} | set(GUIDANCE_FIELDS)
REQUEST_KEYS = {  # per protocol
    "synthetic-object": {"name", "region", "direction", "speed", "reference", "objects"},
    "trajectory": {"name", "trajectory"},
    "motion-transfer": {"name", "reference_clip", "mask"},
}
SSIM_REACH = 5  # px: half the SSIM window; excluded regions are dilated by it
class SuiteError(ValueError):
    """A malformed suite file (one-line message naming the field)."""


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, numbers.Number) else type(value).__name__)


def _integer(value, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= value <= hi:
        raise SuiteError(f"{where}: must be an integer in [{lo}, {hi}], got {_kind(value)} {json.dumps(value)[:40]}")
    return int(value)


def _number(value, where: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and lo <= value <= hi):
        raise SuiteError(f"{where}: must be a finite number in [{lo:g}, {hi:g}], got {_kind(value)} {json.dumps(value)[:40]}")
    return float(value)


def _string(value, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SuiteError(f"{where}: must be a non-empty string, got {_kind(value)}")
    return value


def _object(value, where: str, allowed: set) -> dict:
    if not isinstance(value, dict):
        raise SuiteError(f"{where}: must be an object, got {_kind(value)}")
    if set(value) - allowed:
        raise SuiteError(f"{where}: unknown key {sorted(set(value) - allowed)[0]!r}")
    return value


def _list(value, where: str) -> list:
    if not isinstance(value, list) or not value:
        raise SuiteError(f"{where}: a non-empty list is required, got {_kind(value)}")
    return value


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
    if not isinstance(suite, dict):
        raise SuiteError(f"the top level must be a JSON object, got {_kind(suite)}")
    _object(suite, "top level", SUITE_KEYS)
    base = path.parent
    if "name" in suite:
        _string(suite["name"], "name")
    if "description" in suite and not isinstance(suite["description"], str):
        raise SuiteError(f"description: must be a string, got {_kind(suite['description'])}")
    steps = _integer(suite.get("steps", 25), "steps", 1, MAX_STEPS)
    _number(suite.get("guidance_scale", OFFICIAL_CFG), "guidance_scale", 0.0, 1e4)
    if suite.get("target", "curves") not in TARGET_KINDS:
        raise SuiteError(f"target: expected one of {', '.join(TARGET_KINDS)}, got {suite['target']!r}")
    guidance = _object(suite.get("guidance", {}), "guidance", set(GUIDANCE_FIELDS))
    _check_guidance(guidance, "guidance", steps, check_range="steps" in guidance)
    for i, p in enumerate(_list(suite.get("prompts"), "prompts")):
        _string(p, f"prompts[{i}]")
    for i, seed in enumerate(_list(suite.get("seeds"), "seeds")):
        _integer(seed, f"seeds[{i}]", 0, MAX_SEED)
    requests = _list(suite.get("requests"), "requests")
    for i, r in enumerate(requests):
        requests[i] = _check_request(r, f"requests[{i}]", base)
    for i, s in enumerate(_list(suite.get("settings"), "settings")):
        where = f"settings[{i}]"
        _object(s, where, SETTING_KEYS)
        _string(s.get("name"), f"{where}.name")
        if s.get("features", "moft") not in ("moft", "cr", "vanilla"):
            raise SuiteError(f"{where}.features: moft, cr or vanilla")
        if s.get("target", "curves") not in TARGET_KINDS:
            raise SuiteError(f"{where}.target: expected one of {', '.join(TARGET_KINDS)}, got {s['target']!r}")
        if s.get("fraction") is not None:
            _number(s["fraction"], f"{where}.fraction", 1e-9, 1.0)
        if s.get("gain") is not None:
            _number(s["gain"], f"{where}.gain", -1e6, 1e6)
        _check_guidance(_guidance_fields(s), where, steps, base=guidance)
    if any(protocol(r) == "synthetic-object" for r in requests):
        for i, p in enumerate(suite["prompts"]):
            if prompt_color(p) is None:
                raise SuiteError(f"prompts[{i}]: must name one of the colours {', '.join(COLORS)} "
                                 f"(the synthetic-object requests find the object by its colour)")
    suite.setdefault("name", path.stem)
    return suite


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
                    record=None) -> GuidanceConfig:
    """A layer of guidance fields over ``base`` (and a model's ``record``), checked by ``GuidanceConfig``
    itself, then the guided range."""
    try:
        g = resolve_settings(record, dict(base or {}), fields).guidance
        if check_range:
            g.check_schedule(steps)
    except SettingsError as exc:
        name = getattr(exc, "field", None)
        text = f"{where}.{name}: {exc.problem}" if name is not None else f"{where}: {exc}"
        raise SuiteError(text) from None
    return g


def _check_request(r, where: str, base: Path) -> dict:
    if not isinstance(r, dict):
        raise SuiteError(f"{where}: must be an object with a name and a motion, got {_kind(r)} {json.dumps(r)[:40]}")
    kind = protocol(r)
    _object(r, where, REQUEST_KEYS[kind])
    _string(r.get("name"), f"{where}.name")
    if kind == "trajectory":
        return dict(r, trajectory=_inline_trajectory(r["trajectory"], f"{where}.trajectory", base))
    if kind == "motion-transfer":
        clip = Path(_string(r["reference_clip"], f"{where}.reference_clip"))
        clip = clip if clip.is_absolute() else base / clip
        try:
            read_video(clip, max_frames=1)
        except VideoError as exc:
            raise SuiteError(f"{where}.reference_clip: {exc}") from None
        mask = _mask_trajectory(r.get("mask", "all"), 2, f"{where}.mask", base).regions[0].mask
        return dict(r, reference_clip=str(clip.resolve()), mask=mask)
    if "objects" in r:
        for j, o in enumerate(_list(r["objects"], f"{where}.objects")):
            if (not isinstance(o, dict) or o.get("color") not in (*COLORS, "first", "second")
                    or o.get("direction") not in DIRECTIONS or set(o) - {"color", "direction"}):
                raise SuiteError(f"{where}.objects[{j}]: needs a colour (or first/second) and a direction")
        return r
    if r.get("region") not in ("object", "all"):
        raise SuiteError(f"{where}.region: 'object' or 'all' (or give a 'trajectory' or a 'reference_clip')")
    if "reference" in r:
        _object(r["reference"], f"{where}.reference", {"direction"})
    direction = r.get("direction") or (r.get("reference") or {}).get("direction")
    if direction not in DIRECTIONS:
        raise SuiteError(f"{where}: direction must be one of {', '.join(DIRECTIONS)}")
    if "speed" in r:
        _number(r["speed"], f"{where}.speed", 1e-9, 1.0)
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


def prompt_color(prompt: str) -> str | None:
    return next((w for w in prompt.lower().replace(",", " ").split() if w in COLORS), None)


def run_identity(pipe, channels) -> str:
    """A fingerprint of what a row depends on beyond the suite: the denoiser's, text encoder's and VAE's
    weights (the first elements of every tensor; the VAE renders what is scored) and the motion channels. Rows of another model or
    channel file get other ids, so a work folder is never resumed with stale rows (the model's ``moft.json``
    settings enter the ids through ``with_model_defaults``).

    Example:
        >>> run_identity(pipe, channels)  # doctest: +SKIP
        '5f0c2a9e41d7b3c8'
    """
    h = hashlib.sha1()
    for module in (denoiser(pipe), getattr(pipe, "text_encoder", None), getattr(pipe, "vae", None)):
        for name, param in (module.named_parameters() if module is not None else ()):
            h.update(name.encode())
            h.update(param.detach().flatten()[:64].float().cpu().numpy().tobytes())
    h.update(channels.digest().encode())
    return h.hexdigest()[:16]


def _file_digest(path: str) -> str:
    try:
        return hashlib.sha1(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def items(suite: dict, identity: str = "") -> list[dict]:
    """Every (prompt, seed, request, setting) in a fixed order, each with a stable id
    (which also depends on ``identity``, see ``run_identity``, and on a reference clip's bytes)."""
    out = []
    run = {k: suite.get(k) for k in ("guidance", "steps", "guidance_scale", "target")}
    clips = {r["reference_clip"]: _file_digest(r["reference_clip"]) for r in suite["requests"] if "reference_clip" in r}
    # one group per (prompt, seed, request): its settings share one unguided source video
    groups = itertools.product(suite["prompts"], suite["seeds"], suite["requests"])
    for group, (p, s, r) in enumerate(groups):
        for st in [{"name": "unguided", "unguided": True}] + suite["settings"]:
            item = {"prompt": p, "seed": s, "request": r, "setting": st}
            key = json.dumps(dict(item, run=run, scorer=SCORER_VERSION, clip=clips.get(r.get("reference_clip"))),
                             sort_keys=True) + identity  # any change: new item
            out.append(dict(item, id=hashlib.sha1(key.encode()).hexdigest()[:16], group=group))
    return out


def object_box(frames: np.ndarray, color: str, pad: float = 1.5) -> tuple[np.ndarray, list[float]] | None:
    """Centroid (x, y) px and a square box [x0, y0, x1, y1] (fractions) around the object in frame 0."""
    rgb = np.asarray(COLORS[color])
    dist = np.linalg.norm(frames[0] - rgb, axis=-1)  # (H, W)
    mask = dist < 0.25
    if mask.sum() < 3:
        return None
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    c = np.array([xs.mean(), ys.mean()])
    r = max(np.sqrt(mask.sum() / np.pi), 2.0) * pad
    box = [max(0.0, (c[0] - r + 0.5) / w), max(0.0, (c[1] - r + 0.5) / h),
           min(1.0, (c[0] + r + 0.5) / w), min(1.0, (c[1] + r + 0.5) / h)]
    return c, box


def guidance_settings(setting: dict, base: dict | None = None, record=None) -> tuple[GuidanceConfig, dict]:
    """A setting's ``GuidanceConfig`` (``resolve_settings`` of the model's ``record``, the suite's base
    guidance and the row) and its other keys (``features``, ``fraction``, ``gain``, ``target``)."""
    g = resolve_settings(record, dict(base or {}), _guidance_fields(setting)).guidance
    return g, {k: setting.get(k) for k in ("features", "fraction", "gain", "target")}


def _parts(prompt: str, req: dict) -> list[dict]:
    """A synthetic-object request as parts ``{color, direction, region}``: one per controlled object (or the pan)."""
    if "objects" in req:
        named = [w for w in prompt.lower().replace(",", " ").split() if w in COLORS]
        pick = {"first": 0, "second": 1}
        return [{"color": named[pick[o["color"]]] if o["color"] in pick else o["color"], "direction": o["direction"],
                 "region": "object"} for o in req["objects"]]
    direction = req.get("direction") or req["reference"]["direction"]
    return [{"color": prompt_color(prompt), "direction": direction, "region": req["region"]}]


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
            latent grid, a clip too short or unreadable.
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
                        record=record)
    return plans


def _target(pipe, reference, traj, channels, setting_extra, steps, source, kind, g: GuidanceConfig) -> Target | str:
    """The request's target under a setting's feature mode, channel share and target kind
    (``moft.method.control_target.build_target``, as ``moft control`` builds it), or why there is none."""
    try:
        return build_target(pipe, traj, channels, kind=kind, steps=steps, guidance=g, video_size=source.shape[:3],
                            reference=reference, source=source, gain=setting_extra["gain"] or 1.0,
                            features=setting_extra["features"] or "moft",
                            indices=_channel_subset(channels, setting_extra["fraction"]))
    except (TargetError, TrajectoryError) as exc:  # vanilla without a reference; a zoom that curves cannot express
        return str(exc)


def _synthetic_request(src_frames, prompt, req, seed) -> tuple | str:
    """A synthetic-object request on its source video: (parts, trajectory, reference clip), or why not."""
    f, h, w = src_frames.shape[:3]
    speed = float(req.get("speed", 0.05))
    parts, regions = _parts(prompt, req), []
    for part in parts:
        found = object_box(src_frames, part["color"])
        if found is None:
            return f"no {part['color']} object in source"
        part["start"], box = found
        d = np.asarray(DIRECTIONS[part["direction"]])
        part["requested"] = part["start"] + np.arange(f)[:, None] * speed * np.array([w, h]) * d  # (F, 2) px
        regions.append({"mask": "all" if part["region"] == "all" else {"box": box},
                        "direction": list(d), "speed": speed})
    traj = parse_trajectory({"version": 1, "frames": f, "regions": regions})
    reference = None
    if "reference" in req:
        clip = make_clip(np.random.default_rng(seed + 7), kind="pan", n_frames=f, size=h,
                         direction=req["reference"]["direction"], speed=speed * 32)
        reference = (clip.frames * 255).round().astype(np.uint8)
    return parts, traj, reference


def run_item(pipe, suite: dict, item: dict, channels, cache: dict) -> dict:
    """Generate and score one item; ``cache`` keeps source videos per (prompt, seed) and the
    requests' ``check_suite`` plans (made on first use)."""
    record = pipeline_record(pipe)
    steps, cfg = suite.get("steps", 25), resolve_settings(record, *suite_layers(suite)).guidance_scale
    prompt, seed, req, setting = item["prompt"], item["seed"], item["request"], item["setting"]
    key = (prompt, seed)
    if key not in cache:
        needs = any(resolve_settings(record, *suite_layers(suite, s)).guidance.needs_source
                    for s in suite["settings"] if not s.get("unguided"))
        log = LatentLog() if needs else None  # the source's latents after every step, for the keep levers
        cache[key] = sample(pipe, prompt, seed=seed, steps=steps, guidance_scale=cfg, callback=log)
        cache[("log",) + key] = log.started(cache[key].initial_latents) if log is not None else None
    src = cache[key]
    f, h, w = src.frames.shape[:3]
    kind = protocol(req)
    row = {"id": item["id"], "prompt": prompt, "seed": seed, "request": req["name"], "setting": setting["name"],
           "protocol": kind}
    if kind == "synthetic-object":
        made = _synthetic_request(src.frames, prompt, req, seed)
        if isinstance(made, str):
            return dict(row, status=made)
        parts, traj, reference = made
    else:
        if "plans" not in cache:
            cache["plans"] = check_suite(suite, f, h, w, (h // vae_scale(pipe), w // vae_scale(pipe)), record)
        plan = cache["plans"][suite["requests"].index(req)]
        traj, reference = plan["trajectory"], plan["reference"]
    if setting.get("unguided"):
        frames, seconds = src.frames, 0.0
    else:
        run = resolve_settings(record, *suite_layers(suite, setting))
        g, target_kind, extra = run.guidance, run.target_kind, {k: setting.get(k) for k in ("features", "fraction", "gain")}
        built = time.perf_counter()
        target = (None if g.method == "cut-drag" else  # the proxy start alone: no target
                  _target(pipe, reference, traj, channels, extra, steps, src.frames, target_kind, g))
        if isinstance(target, str):
            return dict(row, status=target)
        keep = None  # the keep levers (moft.method.keep)
        if g.needs_source:
            masks = torch.from_numpy(swept_masks(traj, (h, w), tuple(src.latents.shape[-2:])))  # (R, h, w)
            keep = keep_plan(pipe, g, steps=steps, masks=masks, log=cache[("log",) + key],
                             proxy_frames=drag_video(src.frames, traj) if g.start == "proxy" else None)
        row["target_seconds"] = time.perf_counter() - built
        try:
            out = sample(pipe, prompt, seed=seed, steps=steps, guidance_scale=cfg, latents=src.initial_latents,
                         target=target, guidance=g, keep=keep)
        except GuidanceDiverged as exc:  # no video: the request failed (counted in direction success)
            failed = "direction_success" if kind == "synthetic-object" else "direction_success_lk"
            return dict(row, status="ok", diverged=str(exc), **({failed: 0.0} if kind != "motion-transfer" else {}))
        frames, seconds = out.frames, out.seconds
        row["final_loss"] = out.losses[-1]["loss"] if out.losses else None
    if kind == "synthetic-object":
        scores, reasons = score_synthetic(frames, src.frames, parts, traj)
    elif kind == "trajectory":
        scores, reasons = score_trajectory(frames, src.frames, traj)
    else:
        scores, reasons = score_transfer(frames, src.frames, reference, traj.regions[0].rasterize(h, w))
    scores["seconds"] = seconds
    return dict(row, status="ok", **strict(scores, reasons))


def strict(scores: dict, reasons: dict | None = None) -> dict:
    """Scores as strict JSON: a non-finite number becomes ``None`` and ``null_because`` says why
    (the key ``moft.io.video.strict_json`` uses, here with the metric's own reason).

    Example:
        >>> strict({"psnr": float("inf"), "mf": float("nan"), "n": 3}, {"mf": "no tracks"})
        {'psnr': None, 'mf': None, 'n': 3, 'null_because': {'psnr': 'infinite (identical pixels)', 'mf': 'no tracks'}}
    """
    out, why = {}, {}
    for k, v in scores.items():
        if isinstance(v, (float, np.floating)) and not math.isfinite(v):
            out[k] = None
            why[k] = (reasons or {}).get(k) or ("infinite (identical pixels)" if v > 0 else "not measurable")
        else:
            out[k] = float(v) if isinstance(v, (float, np.floating)) else v
    if why:
        out["null_because"] = why
    return out


def _outside(masks: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Background pixels per frame: not in any frame-0 region nor where it was asked to go, widened
    by the SSIM window's reach. ``masks`` (R, H, W), ``offsets`` (R, F, 2) px -> (F, H, W) bool."""
    import cv2

    num_frames, (height, width) = offsets.shape[1], masks.shape[1:]
    covered = np.zeros((num_frames, height, width), bool)  # (F, H, W)
    for mask, offset in zip(masks, offsets):
        m = mask.astype(np.uint8)
        for k in range(num_frames):
            moved = cv2.warpAffine(m, np.float32([[1, 0, offset[k, 0]], [0, 1, offset[k, 1]]]), (width, height),
                                   flags=cv2.INTER_NEAREST) if np.all(np.isfinite(offset[k])) else m
            covered[k] |= (m | moved) > 0
    return ~np.stack([_dilate(c, SSIM_REACH) for c in covered])


def _score_background(frames, source, outside, scores: dict, reasons: dict) -> None:
    if not outside.any():
        reason = "the regions cover the frame: no background to compare"
        scores["psnr_outside"], scores["ssim_outside"] = math.nan, math.nan
        scores["glitch"], scores["frame_change_max"] = math.nan, math.nan
        reasons["psnr_outside"] = reasons["ssim_outside"] = reasons["glitch"] = reasons["frame_change_max"] = reason
        return
    scores["psnr_outside"] = psnr(frames, source, outside)
    scores["ssim_outside"] = ssim(frames, source, outside)
    try:
        scores["glitch"] = glitch(frames, source, outside)
        scores["frame_change_max"] = float(np.nanmax(frame_change(frames, outside)))
    except ValueError:  # background too thin for one patch
        scores["glitch"], scores["frame_change_max"] = math.nan, math.nan
        reasons["glitch"] = reasons["frame_change_max"] = "no background patch to compare"


def score_synthetic(frames, source, parts, traj) -> tuple[dict, dict]:
    """Synthetic-object protocol: colour-centroid direction/distance/steering, LK Motion Fidelity."""
    f, h, w = frames.shape[:3]
    masks = traj.masks(h, w)  # (R, H, W)
    success, error, tracks, ref_tracks, steer, pieces = [], [], [], [], [], []
    for part, mask in zip(parts, masks):
        path = track_centroid(frames, color=COLORS[part["color"]])
        pieces.append(split(frames, source, COLORS[part["color"]]))
        success.append(direction_success(path, part["requested"]))
        error.append(trajectory_error(path, part["requested"], height=h, width=w))
        steer.append(steering(path, track_centroid(source, color=COLORS[part["color"]]), part["requested"]))
        t = track_points(frames, mask=mask)
        if len(t):
            tracks.append(t)
            ref_tracks.append(request_tracks(t[:, 0], part["requested"]))  # each point follows the request
    lengths = [float(np.hypot(*(p["requested"][-1] - p["requested"][0]))) for p in parts]  # px asked for
    shares = [v["toward_px"] / n for v, n in zip(steer, lengths) if np.isfinite(v["toward_px"]) and n > 0]
    scores = {
        "direction_success": float(np.mean(success)),
        "all_success": float(np.all(success)),
        "displacement_share": float(np.mean(shares)) if shares else math.nan,
        "trajectory_error": float(np.nanmean(error)) if np.isfinite(error).any() else math.nan,
        "motion_fidelity_lk": motion_fidelity(np.concatenate(tracks), np.concatenate(ref_tracks)) if tracks else math.nan,
        "split": float(any(pieces)),  # an object in more pieces than the source ever shows it in
    }
    reasons = {"trajectory_error": "the object was not found in the guided video",
               "displacement_share": "a still request, or the object was not found",
               "motion_fidelity_lk": "no LK track in the regions"}
    for key in ("toward_px", "motion_kept"):
        vals = [v[key] for v in steer if np.isfinite(v[key])]
        scores[key] = float(np.mean(vals)) if vals else math.nan
        reasons[key] = "a still request or source, or the object was not found"
    offsets = np.stack([p["requested"] - p["requested"][0] for p in parts])  # (R, F, 2)
    _score_background(frames, source, _outside(masks, offsets), scores, reasons)
    return scores, reasons


def score_trajectory(frames, source, traj) -> tuple[dict, dict]:
    """General protocol for an explicit trajectory: LK tracks of each frame-0 region against the request.

    Per region: LK tracks of the generated and the source video from the region's frame-0 pixels;
    each point's request is the region's requested path moved to its start (``request_tracks``).
    The region's path is the mean of its tracks (``mean_path``); direction success, mean distance
    (fraction of the frame) and steering compare it with the requested path; Motion Fidelity and
    ObjMC pool the points of all regions. A region ``"all"`` is the camera: its tracks cover the
    frame, and the median dense flow outside the other regions gives the camera error (px/frame).
    """
    f, h, w = frames.shape[:3]
    masks = traj.masks(h, w)  # (R, H, W)
    scale = np.array([w, h], dtype=np.float64)
    objects = np.zeros((h, w), bool)
    for region, mask in zip(traj.regions, masks):
        if region.mask != "all":
            objects |= mask
    success, error, steer, tracks, wanted, cam, zoomed, zoom_ok = [], [], [], [], [], [], [], []
    for region, mask in zip(traj.regions, masks):
        requested = region.path * scale  # (F, 2) px
        t = region_tracks(frames, mask)
        path, before = mean_path(t), mean_path(region_tracks(source, mask))  # (F, 2)
        requested_here = requested - requested[0] + path[0]  # the request from where the region is
        success.append(direction_success(path, requested_here) if len(t) else False)
        error.append(trajectory_error(path, requested_here, height=h, width=w))
        steer.append(steering(path, before, requested))
        if len(t):
            tracks.append(t)
            wanted.append(_requested_tracks(region, t[:, 0], h, w))
        if region.zoom != 1.0:
            measured = zoom_scale(t) if len(t) else math.nan
            zoomed.append(math.log(measured) / math.log(region.zoom) if measured > 0 else math.nan)
            zoom_ok.append(zoom_success(measured, region.zoom))
        if region.mask == "all":
            moved = camera_motion(frames, exclude=_dilate(objects, 2) if objects.any() else None)  # (F-1, 2)
            cam.append(np.linalg.norm(moved - region.displacements * scale, axis=-1))  # (F-1,)
    scores = {
        "direction_success_lk": float(np.mean(success)),
        "trajectory_error_lk": float(np.nanmean(error)) if np.isfinite(error).any() else math.nan,
        "motion_fidelity_lk": motion_fidelity(np.concatenate(tracks), np.concatenate(wanted)) if tracks else math.nan,
        "objmc_lk_px": objmc(np.concatenate(tracks), np.concatenate(wanted)) if tracks else math.nan,
        "camera_error_flow_px": float(np.nanmean(np.concatenate(cam))) if cam else math.nan,
    }
    reasons = {"trajectory_error_lk": "no LK track in the regions", "motion_fidelity_lk": "no LK track in the regions",
               "objmc_lk_px": "no LK track in the regions",
               "camera_error_flow_px": "no camera region ('all') in the request"}
    for key in ("toward_px", "motion_kept"):
        vals = [v[key] for v in steer if np.isfinite(v[key])]
        scores[f"{key}_lk"] = float(np.mean(vals)) if vals else math.nan
        reasons[f"{key}_lk"] = "a still request or source, or no LK track"
    if zoomed:  # share of the requested log scale change achieved, and the verdict (zoom regions only)
        scores["zoom_achieved_lk"] = float(np.nanmedian(zoomed)) if np.isfinite(zoomed).any() else math.nan
        scores["zoom_success_lk"] = float(np.mean(zoom_ok))
        reasons["zoom_achieved_lk"] = "no pair of LK tracks in the zoom regions"
    offsets = np.stack([(r.path - r.path[0]) * scale for r in traj.regions])  # (R, F, 2)
    if zoomed:  # a scaled region covers more than its shifted mask: take where it passes, unshifted
        masks = np.where(np.array([r.zoom != 1.0 for r in traj.regions])[:, None, None],
                         swept_masks(traj, (h, w), (h, w)), masks)  # (R, H, W)
        offsets[[r.zoom != 1.0 for r in traj.regions]] = 0.0
    _score_background(frames, source, _outside(masks, offsets), scores, reasons)
    return scores, reasons


def _requested_tracks(region, starts: np.ndarray, height: int, width: int) -> np.ndarray:
    """Where each frame-0 point of a region is asked to be: moved along the path and scaled by the
    zoom about it (``moft.method.drag.region_affine``). ``starts`` (N, 2) px -> (N, F, 2)."""
    if region.zoom == 1.0:
        return request_tracks(starts, region.path * np.array([width, height], dtype=np.float64))
    affines = np.stack([region_affine(region, f, height, width) for f in range(len(region.path))])  # (F, 2, 3)
    return np.einsum("fij,nj->nfi", affines[:, :, :2], starts) + affines[None, :, :, 2]  # (N, F, 2)


def score_transfer(frames, source, reference, mask) -> tuple[dict, dict]:
    """Motion-transfer protocol: LK tracks of the generated and the reference clip in the same frame-0 region.

    Motion Fidelity between the two track sets; ObjMC-style distance between their mean paths
    (both started at the generated region's start); camera error: the per-frame difference of
    the two clips' camera motion (median flow outside the region, over the frame when the
    region is the whole frame).
    """
    t, ref = region_tracks(frames, mask), region_tracks(reference, mask)  # (N, F, 2), (M, F, 2)
    path, ref_path = mean_path(t), mean_path(ref)
    whole = bool(mask.all())
    exclude = None if whole else _dilate(mask, 2)
    cam = camera_motion(frames, exclude=exclude) - camera_motion(reference, exclude=exclude)  # (F-1, 2)
    scores = {
        "motion_fidelity_lk": motion_fidelity(t, ref) if len(t) and len(ref) else math.nan,
        "objmc_lk_px": objmc(path[None], request_tracks(path[:1], ref_path)) if len(t) and len(ref) else math.nan,
        "camera_error_flow_px": float(np.nanmean(np.linalg.norm(cam, axis=-1))) if np.isfinite(cam).any() else math.nan,
    }
    reasons = {"motion_fidelity_lk": "no LK track in the region of one of the clips",
               "objmc_lk_px": "no LK track in the region of one of the clips",
               "camera_error_flow_px": "the region covers the frame"}
    offsets = (ref_path - ref_path[0])[None] if np.isfinite(ref_path).all() else np.zeros((1, len(frames), 2))
    _score_background(frames, source, _outside(mask[None], offsets), scores, reasons)
    return scores, reasons


def _dilate(mask: np.ndarray, px: int) -> np.ndarray:
    import cv2

    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)) > 0


def _channel_subset(channels, fraction: float | None) -> torch.Tensor:
    return channels.indices if fraction is None else channels.top(fraction)


# (row key, table label, x100, digits, protocols that score it); medians for ratios (one near-still source
# would dominate a mean)
_S, _T, _M = "synthetic-object", "trajectory", "motion-transfer"
METRICS = (
    ("motion_fidelity_lk", "Motion Fidelity (LK) ↑", True, 1, {_S, _T, _M}),
    ("direction_success", "direction success (colour) ↑", False, 2, {_S}),
    ("direction_success_lk", "direction success (LK) ↑", False, 2, {_T}),
    ("all_success", "all objects right ↑", False, 2, {_S}),
    ("displacement_share", "share of requested displacement (median) ↑", False, 2, {_S}),
    ("trajectory_error", "mean distance (colour) ↓", False, 3, {_S}),
    ("trajectory_error_lk", "mean distance (LK) ↓", False, 3, {_T}),
    ("objmc_lk_px", "ObjMC (LK, px) ↓", False, 2, {_T, _M}),
    ("camera_error_flow_px", "camera error (flow, px/frame) ↓", False, 2, {_T, _M}),
    ("zoom_success_lk", "zoom success (LK) ↑", False, 2, {_T}),
    ("zoom_achieved_lk", "zoom achieved (LK, median) ↑", False, 2, {_T}),
    ("toward_px", "pushed toward (px) ↑", False, 1, {_S}),
    ("toward_px_lk", "pushed toward (LK, px) ↑", False, 1, {_T}),
    ("motion_kept", "motion kept (median)", False, 2, {_S}),
    ("motion_kept_lk", "motion kept (LK, median)", False, 2, {_T}),
    ("psnr_outside", "PSNR outside ↑", False, 1, {_S, _T, _M}),
    ("ssim_outside", "SSIM outside ↑", False, 3, {_S, _T, _M}),
    ("glitch", "glitch rate ↓", False, 2, {_S, _T, _M}),
    ("split", "split rate ↓", False, 2, {_S}),
    ("seconds", "s / video", False, 1, {_S, _T, _M}),
    ("target_seconds", "target s / video", False, 1, {_S, _T, _M}),
)
_MEDIAN = {"motion_kept", "motion_kept_lk", "zoom_achieved_lk", "displacement_share"}


def summarise(rows: list[dict]) -> list[dict]:
    """Mean metrics (median ``motion_kept``) per setting, in first-seen order; ``None`` where no row has one.

    A request whose guidance diverged (``GuidanceDiverged``: no video) counts as a failed direction and
    in ``diverged``; it has no other metric.
    """
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["setting"], []).append(r)
    table = []
    for name, rs in groups.items():
        ok = [r for r in rs if r.get("status") == "ok"]
        entry = {"setting": name, "items": len(rs), "scored": len(ok), "diverged": sum("diverged" in r for r in ok),
                 "protocols": sorted({r.get("protocol", _S) for r in rs})}
        for k, *_ in METRICS:
            vals = np.asarray([float(r[k]) for r in ok if r.get(k) is not None], dtype=np.float64)
            vals = vals[np.isfinite(vals)]
            entry[k] = float((np.median if k in _MEDIAN else np.mean)(vals)) if len(vals) else None
        table.append(entry)
    return table


def markdown_table(table: list[dict]) -> str:
    """The summary as Markdown, one column per metric of the protocols in the table."""
    protocols = {p for t in table for p in t.get("protocols", [_S])}
    shown = [m for m in METRICS if m[4] & protocols]
    head = "| setting | scored | " + " | ".join(m[1] for m in shown) + " |\n"
    head += "|---|---|" + "---|" * len(shown) + "\n"

    def fmt(v, percent, digits):
        return "–" if v is None else f"{100 * v if percent else v:.{digits}f}"

    return head + "".join(
        f"| {t['setting']} | {t['scored']}/{t['items']}{f' ({d} diverged)' if (d := t.get('diverged')) else ''} | "
        + " | ".join(fmt(t.get(k), pct, dig) for k, _, pct, dig, _ in shown) + " |\n" for t in table)


def run_suite(pipe, suite: dict, work_dir: str | Path, channels, *, process_index: int = 0, num_processes: int = 1,
              progress=None) -> list[dict]:
    """Run this process's share of the items, skipping items already finished in ``work_dir``;
    returns this share's rows. Shares are whole groups (every setting of one prompt, seed and
    request, dealt round-robin), so the work is balanced and each source video is made once.
    The general requests are checked at the model's size (``check_suite``) before any sampling."""
    f, h, w = default_video_size(pipe)
    cache: dict = {"plans": check_suite(suite, f, h, w, (h // vae_scale(pipe), w // vae_scale(pipe)),
                                        pipeline_record(pipe))}
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    todo = [it for it in items(suite, run_identity(pipe, channels)) if it["group"] % num_processes == process_index]
    rows = []
    for n, item in enumerate(todo):
        done = work / f"{item['id']}.json"
        if done.exists():
            rows.append(json.loads(done.read_text()))
        else:
            with torch.random.fork_rng():  # items reproducible whatever ran before; the caller's RNG untouched
                torch.manual_seed(0)
                row = run_item(pipe, suite, item, channels, cache)
            atomic_write_text(done, json.dumps(row, allow_nan=False))
            rows.append(row)
        if progress is not None:
            progress(n + 1, len(todo))
    return rows


def collect(suite: dict, work_dir: str | Path, identity: str) -> list[dict]:
    """All finished rows of a suite, in item order (identical however the work was sharded);
    ``identity`` is ``run_identity(pipe, channels)`` of the run."""
    work = Path(work_dir)
    return [json.loads((work / f"{it['id']}.json").read_text()) for it in items(suite, identity)
            if (work / f"{it['id']}.json").exists()]
