"""Scoring one generated video against its request, and the summary table of a suite's rows.

Example:
    >>> strict({"motion_fidelity_lk": float("nan"), "direction_success_lk": 1.0}, {"motion_fidelity_lk": "no tracks"})
    {'motion_fidelity_lk': None, 'direction_success_lk': 1.0, 'null_because': {'motion_fidelity_lk': 'no tracks'}}
    >>> rows = [{"setting": "MOFT", "status": "ok", "protocol": "trajectory", "direction_success_lk": v} for v in (1.0, 0.0)]
    >>> table = summarise(rows)                                           # one entry per setting
    >>> table[0]["scored"], table[0]["direction_success_lk"]
    (2, 0.5)
    >>> markdown_table(table).splitlines()[2][:18]
    '| MOFT | 2/2 | – |'

One scorer per protocol (``moft.eval.suite.protocol``):

* **trajectory** (``score_trajectory``) and **motion-transfer** (``score_transfer``), the general
  metrics of ``moft.eval.metrics``: LK point tracks inside the frame-0 region against the requested
  tracks (Motion Fidelity, ObjMC-style distance, direction, mean distance) or against the reference
  clip's LK tracks (Motion Fidelity), camera motion as the median dense flow. A region with a
  ``zoom`` adds ``zoom_success_lk`` and ``zoom_achieved_lk`` (``moft.eval.metrics.zoom_scale`` of its
  tracks). Metric names say ``lk``/``flow``: they are not CoTracker figures.
* **synthetic-object** (``score_synthetic``): the object followed by its colour centroid (paper T2V
  protocol, §5.1).

Besides the verdict (direction success) each row records what guidance did to the object's net
motion against the unguided source (``moft.eval.metrics.steering``): ``toward_px``, the
displacement it added along the request, and ``motion_kept``, the guided net length over the
source's. Over requests in opposite directions, damping cancels out of the mean ``toward_px``;
what remains is steering. Every row with a background also has PSNR/SSIM against the source
outside the regions and whether the guided video has a glitch frame there (``glitch``,
``moft.eval.metrics.glitch``: a frame-to-frame change far above the source's). Rows are strict
JSON (``strict``): a metric that cannot be measured is ``null`` and ``null_because`` says why.
"""

from __future__ import annotations

import math

import numpy as np

from .metrics import (camera_motion, direction_success, frame_change, glitch, mean_path, motion_fidelity, objmc, psnr,
                      region_tracks, request_tracks, split, ssim, steering, track_centroid, track_points,
                      trajectory_error, zoom_scale, zoom_success)
from ..io.synthetic import COLORS
from ..method.drag import region_affine, swept_masks

# bumped whenever the scorers score differently, so work folders never mix rows of two scorers (item ids hold it)
SCORER_VERSION = 5
SSIM_REACH = 5  # px: half the SSIM window; excluded regions are dilated by it


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
    return ~np.stack([dilate(c, SSIM_REACH) for c in covered])


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
            moved = camera_motion(frames, exclude=dilate(objects, 2) if objects.any() else None)  # (F-1, 2)
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
    exclude = None if whole else dilate(mask, 2)
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


def dilate(mask: np.ndarray, px: int) -> np.ndarray:
    """``mask`` (H, W) widened by ``px`` pixels (a square window): (H, W) bool.

    Example:
        >>> point = np.zeros((5, 5), bool); point[2, 2] = True
        >>> int(dilate(point, 1).sum())                                   # one pixel -> 3 x 3
        9
    """
    import cv2

    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)) > 0


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
