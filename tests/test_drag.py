"""``moft.method.drag``: the trajectory rendered by dragging the source's regions; the swept masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from moft.method.drag import drag_video, grow_segment, object_regions, swept_masks
from moft.io.trajectory import parse_trajectory


def _still(size: int = 32, frames: int = 8) -> np.ndarray:
    """A still video: grey gradient background, a red 6x6 square at x 8..14, y 12..18."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.stack([0.3 + 0.2 * xx, 0.3 + 0.2 * yy, 0.4 + 0 * xx], -1).astype(np.float32)
    img[12:18, 8:14] = (1.0, 0.0, 0.0)
    return np.repeat(img[None], frames, 0)


def _traj(mask, direction, speed=0.0625, frames=8):
    return parse_trajectory({"version": 1, "frames": frames,
                             "regions": [{"mask": mask, "direction": direction, "speed": speed}]})


def _red_centroid(frame: np.ndarray) -> np.ndarray:
    red = (frame[..., 0] > 0.8) & (frame[..., 1] < 0.2)
    ys, xs = np.nonzero(red)
    return np.array([xs.mean(), ys.mean()])


def test_a_box_moves_its_frame0_content_along_the_path():
    box = {"box": [8 / 32, 12 / 32, 14 / 32, 18 / 32]}
    proxy = drag_video(_still(), _traj(box, "right"))  # 2 px per frame
    assert proxy.shape == (8, 32, 32, 3) and proxy.dtype == np.float32
    np.testing.assert_allclose(proxy[0], _still()[0], atol=1e-6)
    path = np.stack([_red_centroid(f) for f in proxy])
    np.testing.assert_allclose(path[:, 0] - path[0, 0], 2.0 * np.arange(8), atol=0.1)
    np.testing.assert_allclose(path[:, 1], path[0, 1], atol=0.1)


def test_the_vacated_area_is_filled_from_the_background():
    box = {"box": [8 / 32, 12 / 32, 14 / 32, 18 / 32]}
    last = drag_video(_still(), _traj(box, "right"))[-1]
    hole = last[12:18, 8:14]  # the square left at frame 7 (moved 14 px)
    assert not ((hole[..., 0] > 0.8) & (hole[..., 1] < 0.2)).any()
    assert np.abs(hole - _still()[0, 11, 8:14].mean(0)).max() < 0.2  # close to the surrounding grey


def test_a_pan_shifts_the_whole_frame():
    proxy = drag_video(_still(), _traj("all", "down"))
    np.testing.assert_allclose(_red_centroid(proxy[3]) - _red_centroid(proxy[0]), [0.0, 6.0], atol=0.1)


def test_uint8_frames_are_accepted_and_bad_shapes_refused():
    still = (_still() * 255).round().astype(np.uint8)
    proxy = drag_video(still, _traj("all", "left"))
    assert proxy.max() <= 1.0 and np.allclose(proxy[0], still[0] / 255.0, atol=1e-6)
    with pytest.raises(ValueError, match="frames must be"):
        drag_video(np.zeros((8, 32, 32)), _traj("all", "left"))


def test_swept_masks_cover_where_the_region_passes():
    box = {"box": [0.0, 0.0, 0.25, 0.25]}
    m = swept_masks(_traj(box, "right"), (32, 32), (16, 16))  # 8x8 px box moving 14 px right
    assert m.shape == (1, 16, 16) and m.dtype == bool
    assert m[0, :4, :11].all() and not m[0, 4:].any() and not m[0, :, 12:].any()
    assert swept_masks(_traj("all", "up"), (32, 32), (16, 16)).all()


def _zoom(mask, zoom, frames=3, **motion):
    return parse_trajectory({"version": 1, "frames": frames, "regions": [{"mask": mask, "zoom": zoom, **motion}]})


@pytest.mark.parametrize("zoom, size", [(1.5, 96), (0.5, 32)])
def test_a_camera_zoom_is_the_frame_resized_about_its_centre(zoom, size):
    """The last frame of a whole-frame zoom by s is frame 0 resized by s (cv2.resize, bilinear) with
    its centre kept: at 64 px the resized frame's centre crop (zoom in) or the centre of the
    frame (zoom out). The middle frame is scaled by (1 + s) / 2."""
    rng = np.random.default_rng(0)
    first = cv2.GaussianBlur(rng.random((64, 64, 3)).astype(np.float32), (0, 0), 1.0)
    video = np.repeat(first[None], 3, 0)
    proxy = drag_video(video, _zoom("all", zoom))
    resized = cv2.resize(first, (size, size), interpolation=cv2.INTER_LINEAR)
    if zoom > 1:
        o = (size - 64) // 2
        np.testing.assert_allclose(proxy[-1], resized[o:o + 64, o:o + 64], atol=2e-3)
    else:
        o = (64 - size) // 2
        np.testing.assert_allclose(proxy[-1][o:o + size, o:o + size], resized, atol=2e-3)
    np.testing.assert_allclose(proxy[0], first, atol=1e-6)
    # the middle frame in closed form: pixel x shows frame 0 at c + (x - c) / s_1, c = 31.5
    s = (1 + zoom) / 2
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    expected = cv2.remap(first, 31.5 + (xx - 31.5) / s, 31.5 + (yy - 31.5) / s, cv2.INTER_LINEAR)
    inner = slice(20, 44)
    np.testing.assert_allclose(proxy[1][inner, inner], expected[inner, inner], atol=2e-3)


def test_an_object_zoom_scales_the_object_in_place():
    box = {"box": [6 / 32, 10 / 32, 16 / 32, 20 / 32]}  # the red square (x 8..14, y 12..18) with 2 px of ground
    proxy = drag_video(_still(), _zoom(box, 2.0))
    red = [((f[..., 0] > 0.8) & (f[..., 1] < 0.2)).sum() for f in proxy]
    assert red[0] == 36 and red[-1] == pytest.approx(4 * 36, rel=0.15)  # area grows by s^2
    np.testing.assert_allclose(_red_centroid(proxy[-1]), _red_centroid(proxy[0]), atol=0.3)  # about its centre
    out = drag_video(_still(), _zoom(box, 0.5))
    assert ((out[-1][..., 0] > 0.8) & (out[-1][..., 1] < 0.2)).sum() <= 36 / 4 + 4
    np.testing.assert_allclose(out[-1][24:, 24:], _still()[0][24:, 24:], atol=1e-6)  # far ground untouched


def test_swept_masks_of_a_zoom_cover_the_grown_region():
    box = {"box": [0.375, 0.375, 0.625, 0.625]}  # 8x8 px in the middle of 32x32
    grown = swept_masks(_zoom(box, 2.0), (32, 32), (32, 32))[0]
    assert grown[9:23, 9:23].all() and not grown[:7].any() and not grown[25:].any()  # ~16x16 at the last frame
    shrunk = swept_masks(_zoom(box, 0.5), (32, 32), (32, 32))[0]
    assert shrunk[12:20, 12:20].all() and shrunk.sum() <= 10 * 10  # frame 0's box is the largest


def test_uint8_frames_give_the_same_proxy_as_float_frames():
    still = _still()
    as_uint8 = (still * 255).round().astype(np.uint8)
    traj = _traj({"box": [8 / 32, 12 / 32, 14 / 32, 18 / 32]}, "down")
    np.testing.assert_allclose(drag_video(as_uint8, traj), drag_video(as_uint8 / 255.0, traj), atol=1e-5)


def _points(*tracks, frames=8, radius=0.05):
    """A trajectory with one point region per track (each a list of (x, y) frame fractions)."""
    return parse_trajectory({"version": 1, "frames": frames,
                             "regions": [{"points": [list(p) for p in t], "radius": radius} for t in tracks]})


def test_a_point_grows_into_the_object_under_it_and_no_further():
    seg = grow_segment(_still()[0], np.array([[10.0, 14.0]]))  # a point inside the red square
    square = np.zeros((32, 32), bool)
    square[12:18, 8:14] = True
    grown = cv2.dilate(square.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # plus its one-pixel rim
    assert (seg == grown).all()
    assert grow_segment(_still()[0], np.array([[40.0, 3.0]])) is None  # off the frame: nothing to grow
    assert grow_segment(_still()[0], np.array([[25.0, 25.0]])) is None  # on the background: leaks past half the frame


def test_a_shaded_object_is_grown_whole_by_the_widest_tolerance_that_does_not_leak():
    frame = _still()[0]
    frame[12:14, 8:14] = (0.75, 0.1, 0.1)  # the square's top rows shaded darker: 0.29 from the point's red
    square = np.zeros((32, 32), bool)
    square[12:18, 8:14] = True
    whole = cv2.dilate(square.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    point = np.array([[10.0, 16.0]])  # on the bright part
    assert not grow_segment(frame, point, 0.25)[12].any()  # one tolerance alone leaves the shaded rows behind
    assert (grow_segment(frame, point) == whole).all()  # the ladder takes them
    # a background within the widest tolerance of the point's colour: that fill leaks past half the frame, so the
    # next tolerance is taken, which still joins the shaded rows
    frame[:, :] = np.where(square[..., None], frame, np.float32([0.8, 0.2, 0.15]))  # 0.32 from the red
    assert 0.3 < np.linalg.norm(frame[0, 0] - frame[16, 10]) < 0.35
    assert (grow_segment(frame, point) == whole).all()
    assert grow_segment(frame, point, 0.35) is None


def test_dragging_the_object_under_a_point_moves_all_of_it_and_leaves_no_copy():
    still = _still()
    traj = _points([(11 / 32, 15 / 32), (25 / 32, 15 / 32)])  # the square's centre, 14 px right over the clip
    disk = drag_video(still, traj)[-1]  # the point's disk (radius 1.6 px) alone: a piece of the square moves
    whole = drag_video(still, object_regions(traj, still[0]))[-1]
    red = lambda f: (f[..., 0] > 0.8) & (f[..., 1] < 0.2)  # noqa: E731
    assert red(disk)[12:18, 8:14].sum() > 20  # most of the square stayed behind: the object torn
    assert red(whole)[12:18, 8:14].sum() == 0 and red(whole).sum() == 36  # all 36 pixels arrived, none left
    np.testing.assert_allclose(_red_centroid(whole), [10.5 + 14, 14.5], atol=0.1)


def test_points_on_one_object_move_it_once_and_other_regions_are_kept():
    still = _still()
    box = {"mask": {"box": [0.0, 0.0, 0.2, 0.2]}, "direction": "down", "speed": 0.05}
    traj = parse_trajectory({"version": 1, "frames": 8, "regions": [
        box, {"points": [[10 / 32, 14 / 32], [16 / 32, 14 / 32]], "radius": 0.05},
        {"points": [[12 / 32, 16 / 32], [20 / 32, 16 / 32]], "radius": 0.05}]})
    grown = object_regions(traj, still[0])
    assert len(grown.regions) == 2 and grown.regions[0] == traj.regions[0]  # the box as it was
    merged = grown.regions[1]
    assert merged.tracks.shape == (2, 8, 2) and merged.index == 1
    np.testing.assert_allclose(merged.path, (traj.regions[1].path + traj.regions[2].path) / 2)  # their mean path
    assert object_regions(_traj("all", "left"), still[0]) == _traj("all", "left")  # no point region: unchanged
