"""moft.io.tracks: every track format users author, read by content; resampling; rescaling; one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from moft.io.tracks import Tracks, TracksError, read_tracks, rescale

DATA = Path(__file__).resolve().parent / "data" / "tracks"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SIZE = (64, 48)


def expect_error(path, prefix, **kwargs) -> str:
    kwargs = {"num_frames": 8, "size": SIZE, **kwargs}
    with pytest.raises(TracksError) as info:
        read_tracks(path, **kwargs)
    message = str(info.value)
    assert message.startswith(prefix), message
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- the formats


def test_comfyui_json_tracks_exact_and_resampled():
    t = read_tracks(DATA / "comfyui.json", num_frames=8, size=SIZE)
    assert t.points.shape == (2, 8, 2) and t.visible.all() and t.size == SIZE
    np.testing.assert_array_equal(t.points[0], [[10 + 4 * f, 20] for f in range(8)])  # 8 given: kept
    # 4 evenly spaced positions on a line: resampled onto the same line, evenly (t = f / 7)
    np.testing.assert_allclose(t.points[1], [[50, 10 + 18 * f / 7] for f in range(8)], atol=1e-12)


def test_ati_single_track_unwrapped():
    t = read_tracks(DATA / "ati_single.json", num_frames=5, size=SIZE)
    assert t.points.shape == (1, 5, 2)
    np.testing.assert_allclose(t.points[0, ::2], [[32, 24], [40, 24], [48, 30]])  # knots at frames 0, 2, 4


@pytest.mark.parametrize("name", ["cotracker/tracks.npy", "cotracker/visibility.npy", "cotracker"])
def test_cotracker_npy_from_either_file_or_the_folder(name):
    t = read_tracks(DATA / name, num_frames=8, size=SIZE)
    f = np.arange(8)
    for n in range(3):
        np.testing.assert_allclose(t.points[n], np.stack([8 + 16 * n + 2 * f, 12 + f], -1))
    expected = np.ones((3, 8), bool)
    expected[2, 3:5] = False
    np.testing.assert_array_equal(t.visible, expected)


def test_cotracker_visibility_resampled_conservatively():
    t = read_tracks(DATA / "cotracker", num_frames=15, size=SIZE)  # frame f at position f / 2
    np.testing.assert_array_equal(np.nonzero(~t.visible[2])[0], [5, 6, 7, 8, 9])  # next to hidden 3, 4
    np.testing.assert_allclose(t.points[0, 1], [9.0, 12.5])  # halfway along the line


def test_cotracker_without_visibility_is_all_visible(tmp_path):
    shutil.copy(DATA / "cotracker" / "tracks.npy", tmp_path / "clip_tracks.npy")
    t = read_tracks(tmp_path / "clip_tracks.npy", num_frames=8, size=SIZE)
    assert t.visible.all()
    np.save(tmp_path / "clip_visibility.npy", np.zeros((1, 8, 3), bool))  # the name-matched partner
    assert not read_tracks(tmp_path / "clip_tracks.npy", num_frames=8, size=SIZE).visible.any()


def test_draganything_json():
    t = read_tracks(DATA / "draganything.json", num_frames=8, size=SIZE)
    assert t.points.shape == (2, 8, 2)
    np.testing.assert_allclose(t.points[0], [[20 + 20 * f / 7, 30] for f in range(8)], atol=1e-12)
    np.testing.assert_array_equal(t.points[1], [[5 + f, 5 + f] for f in range(8)])


def test_sgi2v_traj_npy_centres_and_size_from_img_png():
    t = read_tracks(DATA / "sgi2v", num_frames=8)
    assert t.size == (64, 48)
    np.testing.assert_array_equal(t.points[0], [[15 + f, 20] for f in range(8)])
    np.testing.assert_array_equal(t.points[1], [[50, 10 + 2 * f] for f in range(8)])
    assert read_tracks(DATA / "sgi2v" / "traj.npy", num_frames=8, size=(128, 96)).size == (128, 96)


def test_moft_trajectory_point_regions_in_pixels():
    t = read_tracks(EXAMPLES / "points_drag.json", num_frames=8, size=(100, 50))
    assert t.points.shape == (3, 8, 2) and t.visible.all()  # 1 + 2 points; the pan region is skipped
    np.testing.assert_allclose(t.points[0, 0], [0.30 * 100 - 0.5, 0.55 * 50 - 0.5])
    np.testing.assert_allclose(t.points[2], [[0.8 * 100 - 0.5, 0.3 * 50 - 0.5]] * 8)  # a pin


def test_format_is_recognised_by_content_not_name(tmp_path):
    shutil.copy(DATA / "draganything.json", tmp_path / "tracks.npy")
    shutil.copy(DATA / "sgi2v" / "traj.npy", tmp_path / "whatever.json")
    assert read_tracks(tmp_path / "tracks.npy", num_frames=8, size=SIZE).points.shape == (2, 8, 2)
    np.testing.assert_array_equal(read_tracks(tmp_path / "whatever.json", num_frames=8, size=SIZE).points[0, :, 1], 20)


# --------------------------------------------------------------------------- rescale and the data class


def test_rescale_keeps_pixel_centres_and_round_trips():
    t = read_tracks(DATA / "comfyui.json", num_frames=8, size=SIZE)
    big = rescale(t, (128, 96))
    np.testing.assert_allclose(big.points[0, 0], [20.5, 40.5])  # fraction (10.5 / 64, 20.5 / 48) kept
    np.testing.assert_allclose((big.points + 0.5) / [128, 96], (t.points + 0.5) / [64, 48])
    np.testing.assert_allclose(rescale(big, SIZE).points, t.points)
    np.testing.assert_array_equal(big.visible, t.visible)


def test_tracks_validates_itself():
    with pytest.raises(TracksError, match=r"Tracks.points: expected shape \(N, F, 2\)"):
        Tracks(np.zeros((2, 3)), np.ones((2, 3), bool), SIZE)
    with pytest.raises(TracksError, match=r"Tracks.visible: expected shape \(N, F\) = \(2, 3\), got \(3, 2\)"):
        Tracks(np.zeros((2, 3, 2)), np.ones((3, 2), bool), SIZE)
    with pytest.raises(TracksError, match="Tracks.points: not finite"):
        Tracks(np.full((1, 1, 2), np.nan), np.ones((1, 1), bool), SIZE)
    with pytest.raises(TracksError, match="rescale: size: expected"):
        rescale(Tracks(np.zeros((1, 1, 2)), np.ones((1, 1), bool), SIZE), (0, 10))


# --------------------------------------------------------------------------- errors


def write(tmp_path, data, name="t.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.mark.parametrize(
    "data, message",
    [
        ([], "t.json: empty list of tracks"),
        ([[{"x": 1, "y": 2}], []], "t.json: track 1: no points"),
        ([[{"x": 1, "y": 2}], [{"x": 1, "y": 2}] * 5 + [{"x": "7", "y": 2}]],
         't.json: track 1, point 5: "x" is not a number'),
        ([{"x": 1, "y": 2}, {"x": 1, "y": True}], 't.json: track 0, point 1: "y" is not a number'),
        ([{"x": 1, "y": 2}, {"x": 1}], 't.json: track 0, point 1: expected an object with "x" and "y"'),
        ([[{"x": 1, "y": 2}], "abc"], "t.json: track 1: expected an array"),
        ("[[{\"x\": NaN, \"y\": 2}]]", 't.json: track 0, point 0: "x" is not finite (nan)'),
        ("[[{\"x\": 1, \"y\": Infinity}]]", 't.json: track 0, point 0: "y" is not finite (inf)'),
        ({"1": {"trajectory": [[1, 2], [3]]}}, 't.json: track "1", point 1: expected [x, y]'),
        ({"1": {"trajectory": [[1, 2]]}, "2": {"mask_name": "2.png"}}, 't.json: track "2": expected an object with "trajectory"'),
        ({"1": {"trajectory": []}}, 't.json: track "1": "trajectory" must be a non-empty array'),
        ({"tracks": [[1, 2]]}, "t.json: unknown JSON shape (a JSON object); tried moft trajectory"),
        (42, "t.json: unknown JSON shape (a JSON number); tried moft trajectory"),
        ("{\"a\": 1", "t.json: not valid JSON (line 1, column 8)"),
        ({"version": 1, "regions": [{"mask": "all", "direction": "up"}]}, "t.json: no point regions"),
        ({"version": 1, "regions": [{"points": [[0, 2]], "radius": 0.1}]}, "t.json: regions[0].points[0][1]: must be in [0, 1]"),
    ],
)
def test_json_errors_are_one_line_and_name_the_field(tmp_path, data, message):
    expect_error(write(tmp_path, data), message)


def test_size_is_required_where_the_file_does_not_give_it(tmp_path):
    expect_error(DATA / "comfyui.json", "comfyui.json: size is required", size=None)
    expect_error(EXAMPLES / "points_drag.json", "points_drag.json: size is required", size=None)
    shutil.copy(DATA / "sgi2v" / "traj.npy", tmp_path / "traj.npy")  # no img.png beside it
    expect_error(tmp_path / "traj.npy", "traj.npy: size is required", size=None)
    expect_error(DATA / "comfyui.json", "read_tracks: size: expected (W, H)", size=(64,))
    expect_error(DATA / "comfyui.json", "read_tracks: num_frames must be a positive integer", num_frames=0)


def test_npy_errors_name_the_array_and_its_shape(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((3, 4)))
    expect_error(tmp_path / "a.npy", "a.npy: expected shape (1, T, N, 2) (Wan-Move / CoTracker tracks)")
    assert expect_error(tmp_path / "a.npy", "a.npy").endswith("got (3, 4)")
    np.save(tmp_path / "tracks.npy", np.zeros((2, 8, 3, 2)))
    expect_error(tmp_path / "tracks.npy", "tracks.npy: expected shape (1, T, N, 2), got (2, 8, 3, 2)")
    bad = np.zeros((1, 8, 3, 2))
    bad[0, 5, 2, 1] = np.nan
    np.save(tmp_path / "tracks.npy", bad)
    expect_error(tmp_path / "tracks.npy", "tracks.npy: position at index (0, 5, 2, 1) is not finite (nan)")
    np.save(tmp_path / "tracks.npy", np.zeros((1, 8, 3, 2)))
    np.save(tmp_path / "visibility.npy", np.ones((1, 8, 2), bool))
    expect_error(tmp_path / "tracks.npy", "visibility.npy: expected shape (1, T, N) = (1, 8, 3) to match tracks.npy, "
                                          "got (1, 8, 2)")
    np.save(tmp_path / "visibility.npy", np.full((1, 8, 3), 0.5))
    expect_error(tmp_path / "tracks.npy", "visibility.npy: expected bool or 0/1 values")
    lonely = tmp_path / "alone"
    lonely.mkdir()
    np.save(lonely / "vis.npy", np.ones((1, 8, 3), bool))
    expect_error(lonely / "vis.npy", "vis.npy: a visibility array (1, T, N) with no tracks file beside it")
    np.save(tmp_path / "traj.npy", np.array([[[20, 10], [10, 30], [15, 20]]], float))
    expect_error(tmp_path / "traj.npy", "traj.npy: box 0: corners [[x0, y0], [x1, y1]] out of order")
    np.save(tmp_path / "traj.npy", np.zeros((2, 2, 2)))
    expect_error(tmp_path / "traj.npy", "traj.npy: expected shape (N, 2 + F, 2) with F >= 1, got (2, 2, 2)")
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    expect_error(tmp_path / "s.npy", "s.npy: expected a bool, integer or float array, got dtype <U1")
    (tmp_path / "cut.npy").write_bytes((tmp_path / "tracks.npy").read_bytes()[:100])
    expect_error(tmp_path / "cut.npy", "cut.npy: not a readable .npy array")
    expect_error(tmp_path / "missing.json", f"{tmp_path / 'missing.json'}: cannot read file")
    expect_error(lonely, f"{lonely}: a folder without tracks.npy or traj.npy")
