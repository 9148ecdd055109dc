"""The scorers (moft.eval.scoring) against planted motion, no model: each number against a known ground truth."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from moft.eval.scoring import markdown_table, score_synthetic, score_trajectory, score_transfer, strict, summarise
from moft.io.synthetic import COLORS
from moft.io.trajectory import parse_trajectory


def test_strict_rows_say_why_a_metric_is_null():
    row = strict({"a": float("nan"), "b": float("inf"), "c": np.float64(0.5), "d": "x"}, {"a": "no tracks"})
    assert row == {"a": None, "b": None, "c": 0.5, "d": "x",
                   "null_because": {"a": "no tracks", "b": "infinite (identical pixels)"}}
    json.dumps(row, allow_nan=False)
    assert "null_because" not in strict({"a": 1.0})


def _texture(size, seed):
    import cv2

    t = cv2.GaussianBlur(np.random.default_rng(seed).random((size, size, 3)).astype(np.float32), (0, 0), 1.5)
    return (t - t.min()) / (t.max() - t.min())


def _moving_square(step, size=64, frames=8, box=(14, 12, 46, 44)):
    """A textured square moving by ``step`` px/frame over a still texture: (F, S, S, 3) uint8."""
    ground, patch = 0.3 + 0.4 * _texture(size, 1), _texture(size, 2)
    x0, y0, x1, y1 = box
    video = np.repeat(ground[None], frames, axis=0)
    for k in range(frames):
        dx, dy = int(round(step[0] * k)), int(round(step[1] * k))
        video[k, y0 + dy:y1 + dy, x0 + dx:x1 + dx] = patch[y0:y1, x0:x1]
    return (video * 255).round().astype(np.uint8)


def _trajectory(region):
    return parse_trajectory({"version": 1, "frames": 8, "regions": [region]})


def test_score_trajectory_on_planted_motion():
    box = {"box": [14 / 64, 12 / 64, 46 / 64, 44 / 64]}
    traj = _trajectory({"mask": box, "direction": "right", "speed": 2 / 64})  # 2 px/frame right
    still, moved = _moving_square((0, 0)), _moving_square((2, 0))
    good, reasons = score_trajectory(moved, still, traj)
    assert good["direction_success_lk"] == 1.0 and good["motion_fidelity_lk"] > 0.95
    assert good["objmc_lk_px"] < 0.5 and good["trajectory_error_lk"] < 0.01
    assert good["toward_px_lk"] == pytest.approx(14.0, abs=0.5)  # 7 frames x 2 px more than the still source
    assert math.isnan(good["camera_error_flow_px"]) and "camera" in reasons["camera_error_flow_px"]
    assert good["psnr_outside"] > 40 and good["ssim_outside"] > 0.99  # the ground is untouched
    bad, _ = score_trajectory(_moving_square((-2, 0)), still, traj)
    assert bad["direction_success_lk"] == 0.0 and bad["motion_fidelity_lk"] < -0.5 and bad["objmc_lk_px"] > 10
    assert bad["toward_px_lk"] == pytest.approx(-14.0, abs=0.5)
    # the camera: a whole-frame pan request against a planted pan
    ground = _texture(96, 3)
    pan = np.stack([ground[16:80, 16 - 2 * k:80 - 2 * k] for k in range(8)])  # content moves right 2 px/frame
    pan = (pan * 255).round().astype(np.uint8)
    cam, reasons = score_trajectory(pan, pan[:1].repeat(8, 0), _trajectory({"mask": "all", "direction": "right",
                                                                             "speed": 2 / 64}))
    assert cam["camera_error_flow_px"] < 0.2 and cam["motion_fidelity_lk"] > 0.95 and cam["direction_success_lk"] == 1
    assert cam["psnr_outside"] != cam["psnr_outside"] and "cover the frame" in reasons["psnr_outside"]


def test_score_transfer_on_planted_motion():
    ref = _moving_square((2, 1))
    mask = np.zeros((64, 64), bool)
    mask[12:44, 14:46] = True
    same, _ = score_transfer(ref, _moving_square((0, 0)), ref, mask)
    assert same["motion_fidelity_lk"] == pytest.approx(1.0) and same["objmc_lk_px"] == pytest.approx(0.0, abs=1e-6)
    assert same["camera_error_flow_px"] < 0.05
    other, _ = score_transfer(_moving_square((-1, 2)), _moving_square((0, 0)), ref, mask)
    assert other["motion_fidelity_lk"] < 0.5 and other["objmc_lk_px"] > 5


def _zooming(zoom, size=64, frames=8, box=None):
    """A texture scaled by 1 -> ``zoom`` linearly about the frame centre, resampled from a 4x larger
    one: the whole frame (a camera zoom), or only the patch inside ``box`` (x0, y0, x1, y1 px; the
    ground still): (F, S, S, 3) uint8."""
    import cv2

    big = _texture(4 * size, 5)
    c, C = (size - 1) / 2, (4 * size - 1) / 2
    ground = 0.3 + 0.4 * _texture(size, 1)
    video = []
    for k in range(frames):
        s = 1 + (zoom - 1) * k / (frames - 1)
        m = np.float32([[1 / s, 0, C - c / s], [0, 1 / s, C - c / s]])  # output px -> texture px
        frame = cv2.warpAffine(big, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        if box is not None:
            x0, y0, x1, y1 = box
            inside = np.zeros((size, size), np.float32)
            inside[y0:y1, x0:x1] = 1
            inside = cv2.warpAffine(inside, np.float32([[s, 0, c - s * c], [0, s, c - s * c]]), (size, size))[..., None]
            frame = inside * frame + (1 - inside) * ground
        video.append(frame)
    return (np.stack(video) * 255).round().clip(0, 255).astype(np.uint8)


def test_score_trajectory_measures_a_planted_zoom():
    zoom_in = _trajectory({"mask": "all", "zoom": 1.3})
    good, reasons = score_trajectory(_zooming(1.3), _zooming(1.0), zoom_in)
    assert good["zoom_success_lk"] == 1.0 and good["zoom_achieved_lk"] == pytest.approx(1.0, abs=0.1)
    assert good["motion_fidelity_lk"] > 0.9 and good["objmc_lk_px"] < 1.0  # each point asked to go where the zoom takes it
    bad, _ = score_trajectory(_zooming(1 / 1.3), _zooming(1.0), zoom_in)
    assert bad["zoom_success_lk"] == 0.0 and bad["zoom_achieved_lk"] < -0.8
    still, _ = score_trajectory(_zooming(1.0), _zooming(1.0), zoom_in)
    assert still["zoom_success_lk"] == 0.0 and abs(still["zoom_achieved_lk"]) < 0.1
    # an object zoomed out inside its box; the ground outside where it was is untouched
    box = {"box": [16 / 64, 16 / 64, 48 / 64, 48 / 64]}
    obj, reasons = score_trajectory(_zooming(0.7, box=(16, 16, 48, 48)), _zooming(1.0, box=(16, 16, 48, 48)),
                                    _trajectory({"mask": box, "zoom": 0.7}))
    assert obj["zoom_success_lk"] == 1.0 and obj["zoom_achieved_lk"] == pytest.approx(1.0, abs=0.2)
    assert obj["glitch"] is False and obj["psnr_outside"] > 40
    assert "zoom_success_lk" not in score_trajectory(_moving_square((2, 0)), _moving_square((0, 0)),
                                                     _trajectory({"mask": box, "direction": "right"}))[0]


def test_rows_flag_a_glitch_frame_outside_the_region():
    box = {"box": [14 / 64, 12 / 64, 46 / 64, 44 / 64]}
    traj = _trajectory({"mask": box, "direction": "right", "speed": 2 / 64})
    moved, still = _moving_square((2, 0)), _moving_square((0, 0))
    clean, _ = score_trajectory(moved, still, traj)
    assert clean["glitch"] is False and clean["frame_change_max"] < 0.05
    blob = moved.copy()
    blob[5, 50:56, 2:8] = (255, 0, 255)  # a one-frame magenta blob in a corner of the ground
    flagged, _ = score_trajectory(blob, still, traj)
    assert flagged["glitch"] is True and flagged["frame_change_max"] > 0.3
    pan, reasons = score_trajectory(still, still, _trajectory({"mask": "all", "direction": "right"}))
    assert math.isnan(pan["glitch"]) and "cover the frame" in reasons["glitch"]
    table = summarise([dict(strict(clean), setting="a", status="ok"), dict(strict(flagged), setting="a", status="ok")])
    assert table[0]["glitch"] == 0.5 and "glitch rate" in markdown_table(table)


def _disks(steps, size=32, frames=8):
    """Coloured disks over a grey ground, each moving by its (dx, dy) px/frame: (F, S, S, 3) float."""
    video = np.full((frames, size, size, 3), 0.4, np.float32)
    yy, xx = np.mgrid[:size, :size]
    for (color, (x, y)), (dx, dy) in zip((("red", (10, 10)), ("blue", (22, 22))), steps):
        for k in range(frames):
            video[k, (xx - x - dx * k) ** 2 + (yy - y - dy * k) ** 2 <= 9] = COLORS[color]
    return video


def test_score_synthetic_gives_the_share_of_the_requested_displacement_and_all_objects_right():
    """The request asks 1.6 px/frame right (11.2 px over 8 frames); the red disk moves 1 px/frame more
    than in the source: a share of 7 / 11.2. Two objects: both right only when each moved its way."""
    def part(color, direction, start):
        d = np.asarray({"right": (1.0, 0.0), "left": (-1.0, 0.0)}[direction])
        return {"color": color, "direction": direction, "region": "object",
                "requested": np.asarray(start, float) + np.arange(8)[:, None] * 1.6 * d}

    box = {"box": [4 / 32, 4 / 32, 16 / 32, 16 / 32]}
    traj = _trajectory({"mask": box, "direction": "right", "speed": 0.05})
    scores, _ = score_synthetic(_disks([(1, 0), (0, 0)]), _disks([(0, 0), (0, 0)]), [part("red", "right", (10, 10))], traj)
    assert scores["displacement_share"] == pytest.approx(7 / 11.2, abs=0.02) and scores["all_success"] == 1.0
    two = parse_trajectory({"version": 1, "frames": 8, "regions": [
        {"mask": box, "direction": "right", "speed": 0.05},
        {"mask": {"box": [16 / 32, 16 / 32, 28 / 32, 28 / 32]}, "direction": "left", "speed": 0.05}]})
    parts = [part("red", "right", (10, 10)), part("blue", "left", (22, 22))]
    both, _ = score_synthetic(_disks([(1, 0), (-1, 0)]), _disks([(0, 0), (0, 0)]), parts, two)
    one, _ = score_synthetic(_disks([(1, 0), (1, 0)]), _disks([(0, 0), (0, 0)]), parts, two)
    assert both["all_success"] == 1.0 and one["all_success"] == 0.0 and one["direction_success"] == 0.5
    table = summarise([dict(strict(s), setting="a", status="ok") for s in (both, one)])
    assert table[0]["all_success"] == 0.5 and "all objects right" in markdown_table(table)


def test_summary_takes_the_median_of_motion_kept():
    rows = [{"setting": "s", "status": "ok", "motion_kept": k, "toward_px": t, "direction_success": 0.0,
             "motion_fidelity_lk": 0.1, "trajectory_error": 0.2, "psnr_outside": 30.0, "ssim_outside": 0.9, "seconds": 1.0}
            for k, t in ((0.5, 1.0), (0.6, -1.0), (100.0, 3.0))]
    (entry,) = summarise(rows)
    assert entry["motion_kept"] == 0.6 and entry["toward_px"] == 1.0
