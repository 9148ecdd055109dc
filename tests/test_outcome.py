"""The report's "outcome": planted outputs whose motion is known, read back by ``moft.front.outcome``."""

from __future__ import annotations

import numpy as np
import pytest

from moft.front.outcome import outcome, outcome_lines
from moft.io.trajectory import parse_trajectory

H = W = 32
yy, xx = np.mgrid[:H, :W]


def disk(frames: int, start, step, r: float = 4.0, copy_from: int | None = None) -> np.ndarray:
    """(F, H, W, 3) red disk on grey moving ``step`` (dx, dy) px per frame; ``copy_from``: a second disk stays at
    the start from that frame on (the object split)."""
    video = np.full((frames, H, W, 3), 0.3, np.float32)
    for k in range(frames):
        cx, cy = start[0] + k * step[0], start[1] + k * step[1]
        video[k, (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = (0.9, 0.1, 0.1)
        if copy_from is not None and k >= copy_from:
            video[k, (xx - start[0]) ** 2 + (yy - start[1]) ** 2 <= r * r] = (0.9, 0.1, 0.1)
    return video


def request(mask, direction, speed=0.04, frames=8):
    return parse_trajectory({"version": 1, "frames": frames,
                             "regions": [{"mask": mask, "direction": direction, "speed": speed}]})


@pytest.mark.parametrize("step", [(-1.0, 0.5), (1.5, 0.0), (0.0, -1.25)])
def test_a_disk_moved_by_a_known_amount_reads_that_amount(step):
    video = disk(8, (16, 16), step)
    out = outcome(video, request({"circle": [0.5, 0.5, 0.2]}, "left"))
    (e,) = out["regions"]
    assert e["tracker"] == "colour centroid" and e["found_at_px"] == [16.0, 16.0]
    assert np.allclose(e["moved_px"], np.multiply(step, 7), atol=0.3)  # 7 frame steps
    asked = np.array([-0.04 * 7 * W, 0.0])
    assert np.allclose(e["requested_px"], asked)
    assert e["share"] == pytest.approx(np.dot(np.multiply(step, 7), asked) / np.dot(asked, asked), abs=0.03)
    assert e["pieces"] == 1 and e["split"] is False


def test_a_copy_left_behind_is_a_split_against_the_source_and_the_line_says_so():
    source = disk(8, (20, 16), (0, 0))
    video = disk(8, (20, 16), (-2, 0), copy_from=5)
    out = outcome(video, request({"circle": [0.62, 0.5, 0.2]}, "left"), source=source)
    (e,) = out["regions"]
    assert e["pieces"] == 2 and e["split"] is True and e["source_moved_px"] == [0.0, 0.0]
    (line,) = outcome_lines(out)
    assert line.startswith("region 0: moved (") and "of requested (-9.0, +0.0)" in line
    assert "2 pieces (split)" in line and line.endswith("unguided (+0.0, +0.0)")


def test_a_pan_reads_the_global_motion():
    rng = np.random.default_rng(0)
    texture = rng.random((H, W + 16, 3)).astype(np.float32)
    texture = (texture + np.roll(texture, 1, 0) + np.roll(texture, 1, 1)) / 3  # smoother, trackable
    video = np.stack([texture[:, 8 - k: 8 - k + W] for k in range(8)])  # content moves right 1 px/frame
    out = outcome(video, request("all", "right", speed=0.03))
    (e,) = out["regions"]
    assert e["kind"] == "camera" and np.allclose(e["moved_px"], [7.0, 0.0], atol=0.5)
    assert e["share"] == pytest.approx(7.0 / (0.03 * 7 * W), abs=0.08)
    assert outcome_lines(out)[0].startswith("region 0: the camera moved the content (+7.")


def test_an_empty_region_falls_back_to_tracks_and_says_which():
    video = disk(8, (8, 8), (0, 0))
    (e,) = outcome(video, request({"box": [0.6, 0.6, 0.9, 0.9]}, "up"))["regions"]
    assert e["found_at_px"] is None and e["tracker"] == "LK tracks of the region" and e["pieces"] is None


def test_with_a_reference_the_request_is_the_clips_own_motion():
    rng = np.random.default_rng(1)
    texture = rng.random((H, W + 16, 3)).astype(np.float32)
    texture = (texture + np.roll(texture, 1, 0) + np.roll(texture, 1, 1)) / 3
    clip = np.stack([texture[:, 8 + k: 8 + k + W] for k in range(8)])  # content moves left 1 px/frame
    same = outcome(clip, request("all", "right", speed=0.03), reference=clip)  # the trajectory's "right" is ignored
    (e,) = same["regions"]
    assert e["requested_by"] == "the reference clip (measured)" and np.allclose(e["requested_px"], [-7.0, 0.0], atol=0.5)
    assert e["share"] == pytest.approx(1.0, abs=0.02) and "of the reference's (-7." in outcome_lines(same)[0]
