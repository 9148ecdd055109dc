"""``moft.method.transfer``: a clip's motion measured per region (block matching) and returned as a trajectory.

Each clip is made by moving content by a known amount (a planted motion): the measured path must be that amount."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from moft.io.trajectory import parse_trajectory
from moft.method.transfer import TransferError, frame_shift, region_shifts, transfer_trajectory

SIZE = 32


def _texture(seed: int = 0) -> np.ndarray:
    """``(H, W, 3)`` float, a blurred random texture (every shift is visible in it)."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random((SIZE, SIZE, 3)), (0, 0), 0.8)


def _moved(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` with its content moved by (dx, dy) px, bilinear, edges repeated."""
    return cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def test_a_camera_pan_is_measured_to_a_tenth_of_a_pixel():
    steps = np.array([[1.5, 0.0], [1.5, -0.5], [2.0, -1.0], [0.0, 0.0], [-1.0, 0.5]])  # px between frames
    at = np.concatenate([[[0.0, 0.0]], np.cumsum(steps, 0)])  # (F, 2)
    clip = np.stack([_moved(_texture(), *xy) for xy in at])
    measured = region_shifts(clip, np.ones((SIZE, SIZE), bool))
    assert measured.shape == (6, 2) and np.abs(measured - at).max() < 0.1
    assert np.abs(region_shifts(clip[::-1], np.ones((SIZE, SIZE), bool))[-1] + at[-1]).max() < 0.1  # played back


def test_a_regions_own_motion_is_measured_not_the_still_background_around_it():
    yy, xx = np.mgrid[:SIZE, :SIZE]
    clip = []
    for f in range(7):  # a red disk 2 px right and 1 px down a frame, over a still texture
        frame = _texture(1) * 0.5
        frame[(xx - 10 - 2 * f) ** 2 + (yy - 12 - f) ** 2 <= 16] = (1.0, 0.1, 0.1)
        clip.append(frame)
    clip = np.stack(clip)
    disk = (xx - 10) ** 2 + (yy - 12) ** 2 <= 25  # the region a little wider than the disk
    measured = region_shifts(clip, disk)
    assert np.abs(measured[-1] - (12, 6)).max() < 0.6, measured
    assert np.abs(region_shifts(clip, yy >= 24)[-1]).max() < 0.1  # below its path, nothing moves


def test_frame_shift_finds_whole_pixel_shifts_within_its_reach_and_no_further():
    a = _texture(2)
    b = np.roll(a, (3, -2), axis=(0, 1))  # content 2 px left, 3 down
    full = np.ones((SIZE, SIZE), bool)
    assert np.allclose(frame_shift(a, b, full, reach=4), (-2, 3), atol=0.05)
    assert np.abs(frame_shift(a, b, full, reach=1)).max() <= 1.5  # a shift beyond the reach is not found


def test_transfer_trajectory_keeps_the_regions_and_gives_them_the_clips_path():
    at = np.array([[0, 0], [2, 0], [4, 1], [4, 1], [5, 2]], float)
    clip = (255 * np.stack([_moved(_texture(3), *xy) for xy in at])).astype(np.uint8)
    traj = parse_trajectory({"version": 1, "frames": 3, "regions": [
        {"mask": {"box": [0.1, 0.1, 0.9, 0.9]}, "direction": "left", "zoom": 1.3}]})
    copied = transfer_trajectory(clip, traj)
    region = copied.regions[0]
    assert copied.frames == 5 and region.mask == {"box": [0.1, 0.1, 0.9, 0.9]} and region.zoom == 1.0
    assert np.abs((region.path - region.path[0]) * SIZE - at).max() < 0.25  # the clip's motion, in frame fractions
    assert np.allclose(region.path[0], (0.5, 0.5))  # starting where the region is
    camera = transfer_trajectory(clip)  # no trajectory: the whole frame
    assert camera.regions[0].mask == "all" and np.abs(camera.regions[0].path[-1] * SIZE - (16 + 5, 16 + 2)).max() < 0.25
    still = transfer_trajectory(np.repeat(clip[:1], 4, 0))
    assert np.allclose(still.regions[0].path, 0.5) and still.regions[0].zoom == 1.0


def test_point_regions_are_refused_in_one_line():
    traj = parse_trajectory({"version": 1, "frames": 2, "regions": [{"points": [[0.2, 0.2], [0.4, 0.2]], "radius": 0.05}]})
    with pytest.raises(TransferError, match="point regions follow their own tracks"):
        transfer_trajectory(np.zeros((2, SIZE, SIZE, 3), np.uint8), traj)
