"""Evaluation suites: run prompts x seeds x motion requests x settings, score them, write a report.

Example:
    >>> from moft.evaluate import load_suite, run_suite
    >>> suite = load_suite("benchmarks/smoke.json")                        # doctest: +SKIP
    >>> report = run_suite(pipe, suite, work_dir="runs/smoke")            # resumable
    >>> report["table"][0]["direction_success"]

Workflow per item (the paper's T2V protocol, §5.1): generate the unguided *source* video of
(prompt, seed); find the prompt's object in it (colour tracker) and put a box region around it
(or take the whole frame for a camera pan); ask for a motion (a direction, or a reference video's
motion); generate the guided video from the same noise; track the object and score it against the
request. The unguided source scored against the same request is the baseline row. Besides the
verdict (direction success) each row records what guidance did to the object's net motion against
that source (``moft.metrics.steering``): ``toward_px``, the displacement it added along the
request, and ``motion_kept``, the guided net length over the source's. Over requests in opposite
directions, damping cancels out of the mean ``toward_px``; what remains is steering.

Suite file (JSON)::

    {"name": "smoke", "steps": 25, "guidance_scale": 4.0,
     "prompts": ["a red disk standing still"], "seeds": [0, 1],
     "requests": [{"name": "left", "region": "object", "direction": "left", "speed": 0.05},
                  {"name": "pan right (ref)", "region": "all", "reference": {"direction": "right"}},
                  {"name": "apart", "objects": [{"color": "first", "direction": "left"},
                                                {"color": "second", "direction": "right"}]}],
     "settings": [{"name": "MOFT"}, {"name": "+CR", "features": "cr"}, {"name": "no K/V", "shared_kv": false}]}

Setting keys: ``features`` (``moft`` | ``cr`` | ``vanilla``; vanilla needs a reference),
``fraction`` (motion-channel share), ``target`` (how a direction request becomes a target:
``curves``, the paper's region-mean synthesis, or ``drag``, the inverted drag proxy of the source,
``moft.targets.drag_target``), and any ``GuidanceConfig`` field (``steps`` as [start, end]).
A suite-level ``"guidance"`` object sets the base for every setting and ``"target"`` the default
target kind; ``moft evaluate`` puts the model's own defaults (``moft.json``) under them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import torch

from .metrics import (direction_success, motion_fidelity, psnr, ssim, steering, track_centroid, track_points,
                      trajectory_error)
from .sampler import GuidanceConfig, GuidanceDiverged, sample
from .synthetic import COLORS, DIRECTIONS, make_clip
from .targets import TARGET_KINDS, Target, drag_target, reference_target, synthesize_target
from .trajectory import parse_trajectory

# bumped whenever run_item scores differently, so work folders never mix rows of two scorers
SCORER_VERSION = 2
SETTING_KEYS = {"name", "features", "fraction", "gain", "target"} | set(GuidanceConfig.__dataclass_fields__)
REQUEST_KEYS = {"name", "region", "direction", "speed", "reference", "objects"}


class SuiteError(ValueError):
    """A malformed suite file (one-line message naming the field)."""


def load_suite(path: str | Path) -> dict:
    """Read and check a suite file."""
    path = Path(path)
    try:
        suite = json.loads(path.read_text())
    except FileNotFoundError:
        raise SuiteError(f"{path}: no such suite file") from None
    except json.JSONDecodeError as exc:
        raise SuiteError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno})") from None
    if set(suite.get("guidance", {})) - set(GuidanceConfig.__dataclass_fields__):
        raise SuiteError(f"{path}: guidance: unknown key {sorted(set(suite['guidance']) - set(GuidanceConfig.__dataclass_fields__))[0]!r}")
    for key in ("prompts", "seeds", "requests", "settings"):
        if not isinstance(suite.get(key), list) or not suite[key]:
            raise SuiteError(f"{path}: {key}: a non-empty list is required")
    for i, r in enumerate(suite["requests"]):
        if set(r) - REQUEST_KEYS:
            raise SuiteError(f"{path}: requests[{i}]: unknown key {sorted(set(r) - REQUEST_KEYS)[0]!r}")
        if "objects" in r:
            for j, o in enumerate(r["objects"]):
                if (o.get("color") not in (*COLORS, "first", "second") or o.get("direction") not in DIRECTIONS
                        or set(o) - {"color", "direction"}):
                    raise SuiteError(f"{path}: requests[{i}].objects[{j}]: needs a colour (or first/second) and a direction")
            continue
        if r.get("region") not in ("object", "all"):
            raise SuiteError(f"{path}: requests[{i}].region: 'object' or 'all'")
        direction = r.get("direction") or (r.get("reference") or {}).get("direction")
        if direction not in DIRECTIONS:
            raise SuiteError(f"{path}: requests[{i}]: direction must be one of {', '.join(DIRECTIONS)}")
    for i, s in enumerate(suite["settings"]):
        if set(s) - SETTING_KEYS:
            raise SuiteError(f"{path}: settings[{i}]: unknown key {sorted(set(s) - SETTING_KEYS)[0]!r}")
        if s.get("features", "moft") not in ("moft", "cr", "vanilla"):
            raise SuiteError(f"{path}: settings[{i}].features: moft, cr or vanilla")
        if s.get("target", "curves") not in TARGET_KINDS:
            raise SuiteError(f"{path}: settings[{i}].target: expected one of {', '.join(TARGET_KINDS)}, got {s['target']!r}")
    if suite.get("target", "curves") not in TARGET_KINDS:
        raise SuiteError(f"{path}: target: expected one of {', '.join(TARGET_KINDS)}, got {suite['target']!r}")
    for i, p in enumerate(suite["prompts"]):
        if _prompt_color(p) is None:
            raise SuiteError(f"{path}: prompts[{i}]: must name one of the colours {', '.join(COLORS)}")
    suite.setdefault("name", path.stem)
    return suite


def _prompt_color(prompt: str) -> str | None:
    return next((w for w in prompt.lower().replace(",", " ").split() if w in COLORS), None)


def run_identity(pipe, channels) -> str:
    """A fingerprint of what a row depends on beyond the suite: the denoiser's and text encoder's
    weights (the first elements of every tensor) and the motion channels. Rows of another model or
    channel file get other ids, so a work folder is never resumed with stale rows.

    Example:
        >>> run_identity(pipe, channels)  # doctest: +SKIP
        '5f0c2a9e41d7b3c8'
    """
    from .models import denoiser

    h = hashlib.sha1()
    for module in (denoiser(pipe), getattr(pipe, "text_encoder", None)):
        for name, param in (module.named_parameters() if module is not None else ()):
            h.update(name.encode())
            h.update(param.detach().flatten()[:64].float().cpu().numpy().tobytes())
    h.update(channels.digest().encode())
    return h.hexdigest()[:16]


def items(suite: dict, identity: str = "") -> list[dict]:
    """Every (prompt, seed, request, setting) in a fixed order, each with a stable id
    (which also depends on ``identity``, see ``run_identity``)."""
    out = []
    run = {k: suite.get(k) for k in ("guidance", "steps", "guidance_scale", "target")}
    # one group per (prompt, seed, request): its settings share one unguided source video
    groups = itertools.product(suite["prompts"], suite["seeds"], suite["requests"])
    for group, (p, s, r) in enumerate(groups):
        for st in [{"name": "unguided", "unguided": True}] + suite["settings"]:
            item = {"prompt": p, "seed": s, "request": r, "setting": st}
            key = json.dumps(dict(item, run=run, scorer=SCORER_VERSION), sort_keys=True) + identity  # any change: new item
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


def _settings(setting: dict, base: dict | None = None) -> tuple[GuidanceConfig, dict]:
    """A setting's ``GuidanceConfig`` (over ``base``: the model's and the suite's guidance defaults)."""
    g_kwargs = dict(base or {})
    g_kwargs.update({k: v for k, v in setting.items() if k in GuidanceConfig.__dataclass_fields__})
    if "steps" in g_kwargs:
        g_kwargs["steps"] = tuple(g_kwargs["steps"])
    return GuidanceConfig(**g_kwargs), {k: setting.get(k) for k in ("features", "fraction", "gain", "target")}


def _parts(prompt: str, req: dict) -> list[dict]:
    """A request as parts ``{color, direction, region}``: one per controlled object (or the pan)."""
    if "objects" in req:
        named = [w for w in prompt.lower().replace(",", " ").split() if w in COLORS]
        pick = {"first": 0, "second": 1}
        return [{"color": named[pick[o["color"]]] if o["color"] in pick else o["color"], "direction": o["direction"],
                 "region": "object"} for o in req["objects"]]
    direction = req.get("direction") or req["reference"]["direction"]
    return [{"color": _prompt_color(prompt), "direction": direction, "region": req["region"]}]


def _target(pipe, req, traj, channels, setting_extra, lat, steps, seed, size, source, kind) -> Target | str:
    """The request's target under a setting's feature mode and target kind (``source``: the unguided
    frames, dragged for a ``drag`` target), or a reason why there is none."""
    features = setting_extra["features"] or "moft"
    gain = setting_extra["gain"] or 1.0
    f, h = traj.frames, size
    chosen = _channel_subset(channels, setting_extra["fraction"])
    if "reference" in req:
        ref = make_clip(np.random.default_rng(seed + 7), kind="pan", n_frames=f, size=h,
                        direction=req["reference"]["direction"], speed=float(req.get("speed", 0.05)) * 32)
        masks = torch.from_numpy(traj.masks(*lat))
        maps = reference_target(pipe, (ref.frames * 255).round().astype(np.uint8), channels=None, masks=masks,
                                num_steps=steps, content_removal=features != "vanilla")
    elif features == "vanilla":
        return "vanilla features need a reference video"
    elif kind == "drag":
        maps = drag_target(pipe, source, traj, channels=None, num_steps=steps)
    else:
        indices = torch.arange(channels.num_channels) if features == "cr" else chosen
        return synthesize_target(traj, channels, latent_size=lat, gain=gain, indices=indices)
    return _restrict(maps, chosen) if features == "moft" else maps  # map targets are built over all channels


def run_item(pipe, suite: dict, item: dict, channels, cache: dict) -> dict:
    """Generate and score one item; ``cache`` keeps source videos per (prompt, seed)."""
    steps, cfg = suite.get("steps", 25), suite.get("guidance_scale", 7.5)
    prompt, seed, req, setting = item["prompt"], item["seed"], item["request"], item["setting"]
    key = (prompt, seed)
    if key not in cache:
        cache[key] = sample(pipe, prompt, seed=seed, steps=steps, guidance_scale=cfg)
    src = cache[key]
    f, h, w = src.frames.shape[:3]
    row = {"id": item["id"], "prompt": prompt, "seed": seed, "request": req["name"], "setting": setting["name"]}
    speed = float(req.get("speed", 0.05))
    parts, regions = _parts(prompt, req), []
    for part in parts:
        found = object_box(src.frames, part["color"])
        if found is None:
            return dict(row, status=f"no {part['color']} object in source")
        part["start"], box = found
        d = np.asarray(DIRECTIONS[part["direction"]])
        part["requested"] = part["start"] + np.arange(f)[:, None] * speed * np.array([w, h]) * d  # (F, 2) px
        regions.append({"mask": "all" if part["region"] == "all" else {"box": box},
                        "direction": list(d), "speed": speed})
    traj = parse_trajectory({"version": 1, "frames": f, "regions": regions})
    if setting.get("unguided"):
        frames, seconds = src.frames, 0.0
    else:
        g, extra = _settings(setting, suite.get("guidance"))
        lat = (src.latents.shape[-2], src.latents.shape[-1])
        kind = extra["target"] or suite.get("target", "curves")
        target = _target(pipe, req, traj, channels, extra, lat, steps, seed, h, src.frames, kind)
        if isinstance(target, str):
            return dict(row, status=target)
        try:
            out = sample(pipe, prompt, seed=seed, steps=steps, guidance_scale=cfg, latents=src.initial_latents,
                         target=target, guidance=g)
        except GuidanceDiverged as exc:  # no video: the request failed (counted in direction success)
            return dict(row, status="ok", diverged=str(exc), direction_success=0.0)
        frames, seconds = out.frames, out.seconds
        row["final_loss"] = out.losses[-1]["loss"] if out.losses else None
    masks = traj.masks(h, w)  # (R, H, W)
    success, error, tracks, ref_tracks, steer = [], [], [], [], []
    for part, mask in zip(parts, masks):
        path = track_centroid(frames, color=COLORS[part["color"]])
        success.append(direction_success(path, part["requested"]))
        error.append(trajectory_error(path, part["requested"], height=h, width=w))
        steer.append(steering(path, track_centroid(src.frames, color=COLORS[part["color"]]), part["requested"]))
        t = track_points(frames, mask=mask)
        if len(t):
            tracks.append(t)
            ref_tracks.append(part["requested"][None] - part["start"] + t[:, :1])  # each point follows the request
    outside = ~_dilate(masks.any(0), 2)
    mf = motion_fidelity(np.concatenate(tracks), np.concatenate(ref_tracks)) if tracks else float("nan")
    row.update({
        "status": "ok",
        "direction_success": float(np.mean(success)),
        "trajectory_error": float(np.nanmean(error)) if np.isfinite(error).any() else float("nan"),
        "motion_fidelity": float(mf),
        "psnr_outside": float(psnr(frames, src.frames, outside)) if outside.any() else float("nan"),
        "ssim_outside": float(ssim(frames, src.frames, outside)) if outside.any() else float("nan"),
        "seconds": seconds,
    })
    for key in ("toward_px", "motion_kept"):
        vals = [v[key] for v in steer if np.isfinite(v[key])]
        row[key] = float(np.mean(vals)) if vals else float("nan")
    return row


def _dilate(mask: np.ndarray, px: int) -> np.ndarray:
    import cv2

    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)) > 0


def _channel_subset(channels, fraction: float | None) -> torch.Tensor:
    return channels.indices if fraction is None else channels.top(fraction)


def _restrict(target: Target, chosen: torch.Tensor) -> Target:
    """Keep the target's entries for ``chosen`` channels (targets built over all channels)."""
    all_idx = target.channels if target.channels is not None else torch.arange(target.curves.shape[-1])
    pos = torch.tensor([int((all_idx == c).nonzero()[0]) for c in chosen.tolist()])
    maps = target.maps[:, :, pos] if target.maps is not None else None
    return Target(target.curves[..., pos], target.masks, chosen, target.content_removal, maps, target.meta)


def summarise(rows: list[dict]) -> list[dict]:
    """Mean metrics (median ``motion_kept``) per setting, in first-seen order.

    A request whose guidance diverged (``GuidanceDiverged``: no video) counts as a failed direction and
    in ``diverged``; it has no other metric.
    """
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["setting"], []).append(r)
    table = []
    for name, rs in groups.items():
        ok = [r for r in rs if r.get("status") == "ok"]
        entry = {"setting": name, "items": len(rs), "scored": len(ok), "diverged": sum("diverged" in r for r in ok)}
        for k in ("motion_fidelity", "direction_success", "trajectory_error", "toward_px", "motion_kept",
                  "psnr_outside", "ssim_outside", "seconds"):
            vals = np.asarray([float(r.get(k, np.nan)) for r in ok], dtype=np.float64)
            vals = vals[np.isfinite(vals)]
            average = np.median if k == "motion_kept" else np.mean  # a ratio: one near-still source would dominate a mean
            entry[k] = float(average(vals)) if len(vals) else None
        table.append(entry)
    return table


def markdown_table(table: list[dict]) -> str:
    head = ("| setting | scored | Motion Fidelity ↑ | direction success ↑ | trajectory error ↓ | pushed toward (px) ↑ "
            "| motion kept (median) | PSNR outside ↑ | SSIM outside ↑ | s / video |\n|---|---|---|---|---|---|---|---|---|---|\n")

    def fmt(v, p=3):
        return "–" if v is None else f"{v:.{p}f}"

    return head + "".join(
        f"| {t['setting']} | {t['scored']}/{t['items']}{f' ({d} diverged)' if (d := t.get('diverged')) else ''} | {fmt(t['motion_fidelity'] and 100 * t['motion_fidelity'], 1)} "
        f"| {fmt(t['direction_success'], 2)} | {fmt(t['trajectory_error'])} | {fmt(t.get('toward_px'), 1)} "
        f"| {fmt(t.get('motion_kept'), 2)} | {fmt(t['psnr_outside'], 1)} "
        f"| {fmt(t['ssim_outside'])} | {fmt(t['seconds'], 1)} |\n" for t in table)


def run_suite(pipe, suite: dict, work_dir: str | Path, channels, *, process_index: int = 0, num_processes: int = 1,
              progress=None) -> list[dict]:
    """Run this process's share of the items, skipping items already finished in ``work_dir``;
    returns this share's rows. Shares are whole groups (every setting of one prompt, seed and
    request, dealt round-robin), so the work is balanced and each source video is made once."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    todo = [it for it in items(suite, run_identity(pipe, channels)) if it["group"] % num_processes == process_index]
    cache: dict = {}
    rows = []
    for n, item in enumerate(todo):
        done = work / f"{item['id']}.json"
        if done.exists():
            rows.append(json.loads(done.read_text()))
        else:
            torch.manual_seed(0)
            row = run_item(pipe, suite, item, channels, cache)
            from .video import atomic_write_text

            atomic_write_text(done, json.dumps(row))
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
