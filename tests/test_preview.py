"""`moft control --preview`'s pieces: the object found in a region, the blind-request warning, the drawing."""

from __future__ import annotations

import numpy as np
import pytest

from moft.front.preview import COLORS, TINT, find_objects, preview_image, write_preview
from moft.io.trajectory import parse_trajectory

H = W = 32


def disk_video(cx: float, cy: float, r: float = 4.0, frames: int = 4, dx: float = 0.0, ground=(0.3, 0.3, 0.3),
               colour=(0.9, 0.1, 0.1)) -> np.ndarray:
    """(F, H, W, 3) a flat disk on a flat ground, moving dx px per frame."""
    yy, xx = np.mgrid[:H, :W]
    video = np.empty((frames, H, W, 3), np.float32)
    video[:] = ground
    for k in range(frames):
        video[k, (xx - cx - k * dx) ** 2 + (yy - cy) ** 2 <= r * r] = colour
    return video


def traj(*masks, direction="left"):
    return parse_trajectory({"version": 1, "frames": 4,
                             "regions": [{"mask": m, "direction": direction, "speed": 0.1} for m in masks]})


@pytest.mark.parametrize("cx, cy", [(9.0, 11.0), (20.3, 17.6), (15.5, 8.2)])
def test_a_planted_disk_inside_the_region_is_found_at_its_centre(cx, cy):
    box = {"box": [(cx - 7) / W, (cy - 7) / H, (cx + 7) / W, (cy + 7) / H]}
    (obj,) = find_objects(disk_video(cx, cy, r=4.5), traj(box))
    yy, xx = np.mgrid[:H, :W]
    disk = (xx - cx) ** 2 + (yy - cy) ** 2 <= 4.5 ** 2
    assert obj.warning is None and obj.inside == 1.0 and obj.area == int(disk.sum())
    assert np.hypot(obj.centre[0] - cx, obj.centre[1] - cy) < 1.0  # within a pixel of the planted centre
    assert np.allclose(obj.colour, (0.9, 0.1, 0.1), atol=1e-3)


def test_a_moving_object_is_found_and_said_to_move_a_still_one_only_stands_out():
    """Frame 0's disk pixels differ from their median over frames when the disk moves (and only then)."""
    (obj,) = find_objects(disk_video(10, 16, dx=2.0), traj({"box": [0.1, 0.3, 0.6, 0.7]}))
    assert obj.moves and obj.warning is None
    (still,) = find_objects(disk_video(10, 16), traj({"box": [0.1, 0.3, 0.6, 0.7]}))
    assert not still.moves and still.warning is None  # it stands out though


def test_an_empty_region_yields_the_warning_and_the_other_region_does_not():
    video = disk_video(8, 8)
    found = find_objects(video, traj({"box": [0.0, 0.0, 0.5, 0.5]}, {"circle": [0.75, 0.75, 0.15]}))
    assert found[0].warning is None
    assert found[1].warning.startswith("regions[1]: nothing in the region moves or stands out")
    assert found[1].centre is None and found[1].area == 0


def test_a_region_touching_the_edge_of_an_object_says_it_is_mostly_outside():
    (obj,) = find_objects(disk_video(16, 16, r=6), traj({"box": [0.6, 0.4, 0.9, 0.6]}))
    assert obj.inside < 0.5 and "mostly outside" in obj.warning and "x=0.50, y=0.50" in obj.warning


def test_all_is_the_camera_and_only_a_flat_frame_warns():
    found = find_objects(disk_video(8, 8), traj("all"))
    assert found[0].warning is None
    flat = np.full((4, H, W, 3), 0.5, np.float32)
    assert "flat" in find_objects(flat, traj("all"))[0].warning


def test_the_drawing_tints_and_outlines_the_region_and_leaves_the_rest():
    ground = (0.2, 0.4, 0.6)
    video = disk_video(24, 24, r=2, ground=ground)  # the disk sits away from the region
    t = traj({"box": [0.25, 0.25, 0.5, 0.5]}, direction="down")  # pixels 8..15 of 32; path from (12, 12) down
    s = 8
    image = preview_image(video[0], t, find_objects(video, t), scale=s)
    assert image.shape == (H * s, W * s, 3)
    ground_px = np.round(np.asarray(ground) * 255)
    tinted = np.round((1 - TINT) * ground_px + TINT * np.asarray(COLORS[0]))
    assert np.abs(image[s * 9 + 4, s * 14 + 4].astype(int) - tinted).max() <= 1  # inside, off the path and label
    assert np.array_equal(image[s * 4, s * 4], ground_px)  # outside every region and path: untouched
    assert np.array_equal(image[s * 12, s * 8 + 1], COLORS[0])  # the outline on the region's left edge
    end = np.round(t.regions[0].path[-1] * [W * s, H * s]).astype(int)  # the requested end point: a dot
    assert np.array_equal(image[end[1], end[0]], COLORS[0])
    t = traj({"box": [0.6, 0.6, 0.9, 0.9]}, direction="down")  # now around the disk: a white cross on its centre
    image = preview_image(video[0], t, find_objects(video, t), scale=s)
    assert np.array_equal(image[s * 24 + s // 2, s * 24 + s // 2 - 3], (255, 255, 255))


def test_write_preview_writes_a_png(tmp_path):
    found = write_preview(tmp_path / "p.png", disk_video(12, 12), traj({"box": [0.2, 0.2, 0.6, 0.6]}))
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG" and found[0].centre is not None
