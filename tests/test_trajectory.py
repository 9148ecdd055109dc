"""Tests for moft.io.trajectory: the trajectory-file format, its parser and validator."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from moft.io.trajectory import (
    DEFAULT_SPEED,
    DIRECTIONS,
    Region,
    Trajectory,
    TrajectoryError,
    load_trajectory,
    parse_trajectory,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def doc(*regions, frames=8, **extra):
    """A minimal valid document around the given regions."""
    out = {"version": 1, "frames": frames, "regions": list(regions)}
    out.update(extra)
    return out


def one(region, frames=8) -> Region:
    return parse_trajectory(doc(region, frames=frames)).regions[0]


def expect_error(data, prefix, **kwargs) -> str:
    with pytest.raises(TrajectoryError) as info:
        parse_trajectory(data, **kwargs)
    message = str(info.value)
    assert message.startswith(prefix), message
    assert len(message.splitlines()) == 1 and "\n" not in message, message
    return message


# --------------------------------------------------------------------------- examples


@pytest.mark.parametrize("frames", [8, 9])  # the model's frame count: moft-tiny, moft-tiny-wan
@pytest.mark.parametrize("name", ["pan_right", "object_left", "two_objects", "zoom_in"])
def test_examples_load(name, frames):
    """The examples leave the frame count to the model, except two_objects, whose segments name frames 0-7."""
    traj = load_trajectory(EXAMPLES / f"{name}.json", default_frames=frames)
    frames = 8 if name == "two_objects" else frames
    assert traj.frames == frames
    masks = traj.masks(32, 32)
    assert masks.shape == (len(traj.regions), 32, 32) and masks.dtype == bool
    assert masks.reshape(len(traj.regions), -1).any(axis=1).all()
    for region in traj.regions:
        assert region.path.shape == (frames, 2)
        assert region.displacements.shape == (frames - 1, 2)
    assert parse_trajectory(json.loads(json.dumps(traj.to_dict()))) == traj


def test_example_contents():
    pan = load_trajectory(EXAMPLES / "pan_right.json", default_frames=8).regions[0]
    assert pan.mask == "all" and (pan.displacements[:, 0] > 0).all() and (pan.displacements[:, 1] == 0).all()
    obj = load_trajectory(EXAMPLES / "object_left.json", default_frames=8).regions[0]
    assert "circle" in obj.mask and (obj.displacements[:, 0] < 0).all()
    a, b = load_trajectory(EXAMPLES / "two_objects.json").regions
    assert "box" in a.mask and "box" in b.mask
    assert "points" in b.motion and "segments" in a.motion
    # opposite horizontal directions at every transition
    assert (np.sign(a.displacements[:, 0]) == -np.sign(b.displacements[:, 0])).all()
    assert (a.displacements[:, 0] != 0).all()


# --------------------------------------------------------------------------- masks


def test_box_area():
    region = one({"mask": {"box": [0.0, 0.0, 0.5, 0.25]}, "direction": "up"})
    mask = region.rasterize(8, 16)
    assert mask.shape == (8, 16)
    assert mask.sum() == 8 * 2  # 8 of 16 columns, 2 of 8 rows
    assert mask[:2, :8].all() and not mask[2:].any() and not mask[:, 8:].any()
    np.testing.assert_allclose(region.path[0], [0.25, 0.125])


def test_box_tiles_without_overlap():
    # half-open boxes: a pixel centre on the shared edge x = 0.5 belongs to the right box only
    a = one({"mask": {"box": [0, 0, 0.5, 1]}, "direction": "up"}).rasterize(5, 5)
    b = one({"mask": {"box": [0.5, 0, 1, 1]}, "direction": "up"}).rasterize(5, 5)
    assert not (a & b).any() and (a | b).all()


def test_circle_centre_in_out():
    region = one({"mask": {"circle": [0.5, 0.5, 0.25]}, "direction": "left"})
    mask = region.rasterize(16, 16)
    # centre (8, 8) px, radius 4 px
    assert mask[8, 8] and mask[7, 7] and mask[8, 11]
    assert not mask[8, 12 + 1] and not mask[0, 0] and not mask[8, 3]
    np.testing.assert_allclose(region.path[0], [0.5, 0.5])


def test_circle_radius_uses_shorter_side():
    region = one({"mask": {"circle": [0.5, 0.5, 0.25]}, "direction": "left"})
    mask = region.rasterize(16, 64)  # radius 0.25 * 16 = 4 px, round in pixels
    rows = np.nonzero(mask.any(axis=1))[0]
    cols = np.nonzero(mask.any(axis=0))[0]
    assert rows.max() - rows.min() == cols.max() - cols.min()
    assert abs(mask.sum() - math.pi * 16) < 8


def test_polygon():
    # right triangle covering the lower-left half of the frame
    region = one({"mask": {"polygon": [[0, 0], [0, 1], [1, 1]]}, "direction": "down"})
    mask = region.rasterize(10, 11)  # no pixel centre lies exactly on the diagonal
    ii, jj = np.mgrid[0:10, 0:11]
    np.testing.assert_array_equal(mask, (jj + 0.5) / 11 < (ii + 0.5) / 10)
    np.testing.assert_allclose(region.path[0], [1 / 3, 2 / 3])


def test_polygon_square_matches_box():
    square = one({"mask": {"polygon": [[0.2, 0.2], [0.7, 0.2], [0.7, 0.7], [0.2, 0.7]]}, "direction": "up"})
    box = one({"mask": {"box": [0.2, 0.2, 0.7, 0.7]}, "direction": "up"})
    np.testing.assert_array_equal(square.rasterize(13, 17), box.rasterize(13, 17))
    np.testing.assert_allclose(square.path[0], box.path[0])


def write_png(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


def test_image_mask(tmp_path):
    img = np.zeros((8, 8), np.uint8)
    img[0:4, 4:8] = 255  # top-right quadrant
    write_png(tmp_path / "m.png", img)
    data = doc({"mask": {"image": "m.png"}, "direction": "right"})
    (tmp_path / "t.json").write_text(json.dumps(data))
    region = load_trajectory(tmp_path / "t.json").regions[0]
    np.testing.assert_allclose(region.path[0], [0.75, 0.25])
    assert region.base_dir == tmp_path.resolve() or region.base_dir == tmp_path
    np.testing.assert_array_equal(region.rasterize(8, 8), img > 127)
    big = region.rasterize(32, 32)
    # bilinear upsampling: the quadrant, minus its rounded inner corner pixel
    assert big[:15, 16:].all() and big[:16, 17:].all() and not big[15, 16]
    assert not big[16:].any() and not big[:, :16].any()
    small = region.rasterize(2, 2)
    np.testing.assert_array_equal(small, [[False, True], [False, False]])
    # base_dir given explicitly, and to_dict round trip from anywhere
    traj = parse_trajectory(data, base_dir=tmp_path)
    assert parse_trajectory(traj.to_dict()) == traj


def test_image_rgb_and_threshold(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    img[:, :2] = 255
    img[:, 2] = 100  # below 0.5 -> out
    write_png(tmp_path / "rgb.png", img)
    region = parse_trajectory(doc({"mask": {"image": "rgb.png"}, "direction": "up"}), base_dir=tmp_path).regions[0]
    assert region.rasterize(4, 4)[:, :2].all() and not region.rasterize(4, 4)[:, 2:].any()


def test_all_mask():
    region = one({"mask": "all", "direction": "right"})
    assert region.rasterize(5, 7).all() and region.rasterize(5, 7).shape == (5, 7)
    np.testing.assert_allclose(region.path[0], [0.5, 0.5])


def test_masks_stack():
    traj = parse_trajectory(
        doc({"mask": "all", "direction": "right"}, {"mask": {"box": [0, 0, 0.5, 0.5]}, "direction": "left"})
    )
    masks = traj.masks(4, 4)
    assert masks.shape == (2, 4, 4) and masks[0].all() and masks[1].sum() == 4


# --------------------------------------------------------------------------- motion


def test_points_one_per_frame_kept():
    pts = [[0.1 * i, 0.5] for i in range(5)]
    region = one({"mask": "all", "points": pts}, frames=5)
    np.testing.assert_allclose(region.path, pts)
    np.testing.assert_allclose(region.displacements, [[0.1, 0.0]] * 4)


def test_points_resampled():
    region = one({"mask": "all", "points": [[0.0, 0.0], [1.0, 0.5]]}, frames=5)
    np.testing.assert_allclose(region.path, [[0, 0], [0.25, 0.125], [0.5, 0.25], [0.75, 0.375], [1, 0.5]])
    # more points than frames: frames sample the polyline at evenly spaced arc-indices
    region = one({"mask": "all", "points": [[0, 0], [0.2, 0], [0.4, 0], [0.6, 0], [1.0, 1.0]]}, frames=3)
    np.testing.assert_allclose(region.path, [[0, 0], [0.4, 0], [1, 1]])
    np.testing.assert_allclose(region.displacements, np.diff(region.path, axis=0))


def test_direction_speed():
    region = one({"mask": {"box": [0.2, 0.2, 0.4, 0.4]}, "direction": "down-right", "speed": 0.1}, frames=4)
    step = 0.1 / math.sqrt(2)
    np.testing.assert_allclose(region.displacements, [[step, step]] * 3)
    np.testing.assert_allclose(region.path[0], [0.3, 0.3])
    np.testing.assert_allclose(region.path[-1], [0.3 + 3 * step, 0.3 + 3 * step])
    default = one({"mask": "all", "direction": [3, -4]}, frames=3)
    np.testing.assert_allclose(default.displacements, [[0.6 * DEFAULT_SPEED, -0.8 * DEFAULT_SPEED]] * 2)
    assert default.motion == {"direction": [3.0, -4.0], "speed": DEFAULT_SPEED}


def test_directions_table():
    assert DIRECTIONS["up"] == (0.0, -1.0) and DIRECTIONS["right"] == (1.0, 0.0)
    for name, (dx, dy) in DIRECTIONS.items():
        assert math.isclose(math.hypot(dx, dy), 1.0)
        region = one({"mask": "all", "direction": name, "speed": 0.5}, frames=2)
        np.testing.assert_allclose(region.displacements[0], [0.5 * dx, 0.5 * dy])


def test_segments_right_then_left():
    region = one(
        {
            "mask": "all",
            "segments": [
                {"frames": [0, 7], "direction": [1, 0]},
                {"frames": [8, 15], "direction": "left", "speed": 0.02},
            ],
        },
        frames=16,
    )
    d = region.displacements
    assert d.shape == (15, 2)
    np.testing.assert_allclose(d[:8], [[DEFAULT_SPEED, 0]] * 8)
    np.testing.assert_allclose(d[8:], [[-0.02, 0]] * 7)
    np.testing.assert_allclose(region.path[0], [0.5, 0.5])
    np.testing.assert_allclose(region.path[8], [0.5 + 8 * DEFAULT_SPEED, 0.5])


def test_segments_gaps_have_zero_motion():
    region = one({"mask": "all", "segments": [{"frames": [2, 3], "direction": "up", "speed": 0.1}]}, frames=8)
    expected = np.zeros((7, 2))
    expected[2:4] = [0, -0.1]
    np.testing.assert_allclose(region.displacements, expected)


def test_default_frames():
    traj = parse_trajectory({"version": 1, "regions": [{"mask": "all", "direction": "up"}]}, default_frames=5)
    assert traj.frames == 5 and traj.regions[0].path.shape == (5, 2)
    assert parse_trajectory(traj.to_dict(), default_frames=9) == traj


def test_arrays_read_only_and_hashable():
    traj = load_trajectory(EXAMPLES / "two_objects.json")
    with pytest.raises(ValueError):
        traj.regions[0].path[0, 0] = 1.0
    assert hash(traj) == hash(parse_trajectory(traj.to_dict()))
    assert isinstance(traj, Trajectory)


# --------------------------------------------------------------------------- errors

GOOD = {"mask": "all", "direction": "right"}


def test_error_bad_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "version": 1,\n  "frames": ,\n}')
    with pytest.raises(TrajectoryError) as info:
        load_trajectory(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not valid JSON (line 3, column 13)"), message
    assert "\n" not in message


def test_error_missing_file(tmp_path):
    with pytest.raises(TrajectoryError, match=r"nope\.json: cannot read file"):
        load_trajectory(tmp_path / "nope.json")
    with pytest.raises(TrajectoryError, match="cannot read file"):
        load_trajectory(tmp_path)  # a directory


def test_error_not_utf8_and_duplicates_and_deep(tmp_path):
    path = tmp_path / "x.json"
    path.write_bytes(b'{"version": 1, "regions": "\xff"}')
    with pytest.raises(TrajectoryError, match="x.json: not valid UTF-8"):
        load_trajectory(path)
    path.write_text('{"version": 1, "version": 1, "regions": []}')
    with pytest.raises(TrajectoryError, match="x.json: duplicate key 'version'"):
        load_trajectory(path)
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(TrajectoryError, match="x.json: "):
        load_trajectory(path)


def test_error_top_level_not_object(tmp_path):
    expect_error([1, 2], "trajectory: must be an object, got array")
    path = tmp_path / "list.json"
    path.write_text("[]")
    with pytest.raises(TrajectoryError, match="^" + re.escape(f"{path}: must be an object")):
        load_trajectory(path)


def test_error_missing_keys():
    expect_error({"regions": [GOOD]}, "trajectory: missing key 'version'")
    expect_error({"version": 1}, "trajectory: missing key 'regions'")
    expect_error(doc({"direction": "up"}), "regions[0]: missing key 'mask'")
    expect_error(doc({"mask": "all"}), "regions[0]: missing motion")
    expect_error(doc({"mask": "all", "segments": [{"frames": [0, 1]}]}), "regions[0].segments[0]: missing key 'direction'")


def test_error_unknown_keys():
    assert expect_error(doc(dict(GOOD, colour="red")), "regions[0]: unknown key 'colour'").endswith("'colour'")
    expect_error(doc(GOOD, extra=1), "trajectory: unknown key 'extra'")
    expect_error(doc({"mask": {"box": [0, 0, 1, 1], "x": 1}, "direction": "up"}), "regions[0].mask: unknown key 'x'")
    expect_error(
        doc({"mask": "all", "segments": [{"frames": [0, 1], "direction": "up", "sped": 1}]}),
        "regions[0].segments[0]: unknown key 'sped'; did you mean 'speed'?",
    )
    expect_error(doc({"mask": {"bx": [0, 0, 1, 1]}, "direction": "up"}), "regions[0].mask: unknown key 'bx'; did you mean 'box'?")
    expect_error(doc({"mask": "all", "direction": "lefft"}), "regions[0].direction: unknown direction 'lefft'")
    assert expect_error(doc({"mask": "all", "direction": "lefft"}), "").endswith("; did you mean 'left'?")
    expect_error(doc({"mask": {}, "direction": "up"}), "regions[0].mask: must have exactly one of")
    expect_error(doc({"mask": {"box": [0, 0, 1, 1], "circle": [0, 0, 1]}, "direction": "up"}), "regions[0].mask: must have exactly one")


def test_error_wrong_types():
    expect_error(doc(GOOD, frames="8"), "frames: must be an integer, got string '8'")
    expect_error(doc(GOOD, frames=8.0), "frames: must be an integer, got 8.0")
    expect_error(doc(GOOD, frames=True), "frames: must be an integer, got boolean")
    expect_error(doc(GOOD, frames=1), "frames: must be in [2, 4096], got 1")
    expect_error(doc(GOOD, frames=10**30), "frames: must be in [2, 4096], got 1000000000000000000000000000000")
    expect_error({"version": 1, "regions": {}}, "regions: must be an array, got object")
    expect_error({"version": 1, "regions": []}, "regions: must have at least 1 regions")
    expect_error(doc("all"), "regions[0]: must be an object, got string")
    expect_error(doc({"mask": 3, "direction": "up"}), "regions[0].mask: must be \"all\" or an object")
    expect_error(doc({"mask": "everything", "direction": "up"}), "regions[0].mask: must be \"all\"")
    expect_error(doc({"mask": {"box": "0 0 1 1"}, "direction": "up"}), "regions[0].mask.box: must be an array")
    expect_error(doc({"mask": {"box": [0, 0, 1]}, "direction": "up"}), "regions[0].mask.box: must have exactly 4")
    expect_error(doc({"mask": {"box": [0, 0, True, 1]}, "direction": "up"}), "regions[0].mask.box[2]: must be a number, got boolean")
    expect_error(doc({"mask": "all", "points": [[0, 0], [0, None]]}), "regions[0].points[1][1]: must be a number, got null")
    expect_error(doc({"mask": {"image": 5}, "direction": "up"}), "regions[0].mask.image: must be a path string")
    expect_error(doc({"mask": "all", "direction": {"x": 1}}), "regions[0].direction: must be a direction name or an array")
    expect_error(doc({"mask": "all", "direction": "up", "speed": "fast"}), "regions[0].speed: must be a number")
    expect_error(doc({"mask": "all", "segments": [{"frames": [0.0, 1], "direction": "up"}]}), "regions[0].segments[0].frames: frame numbers must be integers")
    expect_error(doc({"mask": "all", "segments": []}), "regions[0].segments: must have at least 1")
    expect_error(doc({"mask": "all", "points": [[0, 0]]}), "regions[0].points: must have at least 2 points")
    expect_error(doc({"mask": "all", "points": [[0, 0], [1, 1]], "speed": 0.1}), "regions[0]: 'speed' is only allowed")
    expect_error(doc({"mask": "all", "points": [[0, 0], [1, 1]], "direction": "up"}), "regions[0]: give exactly one of")


def test_error_version():
    expect_error(doc(GOOD, version=2), "version: must be 1, got 2")
    expect_error(doc(GOOD, version=True), "version: must be 1, got true")
    expect_error(doc(GOOD, version="1"), "version: must be 1, got '1'")


@pytest.mark.parametrize(
    "region, prefix",
    [
        ({"mask": {"box": [0.3, -0.1, 0.6, 0.6]}, "direction": "up"}, "regions[0].mask.box[1]: must be in [0, 1], got -0.1"),
        ({"mask": {"circle": [1.5, 0.5, 0.1]}, "direction": "up"}, "regions[0].mask.circle[0]: must be in [0, 1]"),
        ({"mask": {"polygon": [[0, 0], [1, 0], [1, 2]]}, "direction": "up"}, "regions[0].mask.polygon[2][1]: must be in [0, 1]"),
        ({"mask": "all", "points": [[0, 0], [1.0001, 0]]}, "regions[0].points[1][0]: must be in [0, 1]"),
        ({"mask": "all", "points": [[0, 0], [float("nan"), 0]]}, "regions[0].points[1][0]: must be a finite number, got nan"),
        ({"mask": "all", "points": [[0, float("inf")], [0, 0]]}, "regions[0].points[0][1]: must be a finite number, got inf"),
        ({"mask": "all", "direction": "up", "speed": 0}, "regions[0].speed: must be in (0, 1], got 0.0"),
        ({"mask": "all", "direction": "up", "speed": 1.5}, "regions[0].speed: must be in (0, 1]"),
        ({"mask": "all", "direction": [10**400, 1]}, "regions[0].direction[0]: must be a finite number"),
    ],
)
def test_error_out_of_range(region, prefix):
    expect_error(doc(region), prefix)


@pytest.mark.parametrize(
    "mask, prefix",
    [
        ({"circle": [0.5, 0.5, 0]}, "regions[0].mask.circle: radius must be > 0"),
        ({"circle": [0.5, 0.5, -0.2]}, "regions[0].mask.circle: radius must be > 0"),
        ({"box": [0.6, 0.3, 0.3, 0.6]}, "regions[0].mask.box: x0 must be < x1"),
        ({"box": [0.3, 0.3, 0.6, 0.3]}, "regions[0].mask.box: y0 must be < y1"),
        ({"polygon": [[0, 0], [0.5, 0.5], [1, 1]]}, "regions[0].mask.polygon: polygon has zero area"),
        ({"polygon": [[0, 0], [1, 1]]}, "regions[0].mask.polygon: must have at least 3 points"),
    ],
)
def test_error_degenerate_mask(mask, prefix):
    expect_error(doc({"mask": mask, "direction": "up"}), prefix)


def test_error_image_problems(tmp_path):
    expect_error(doc({"mask": {"image": "missing.png"}, "direction": "up"}), "regions[0].mask.image: cannot read", base_dir=tmp_path)
    write_png(tmp_path / "black.png", np.zeros((4, 4)))
    expect_error(doc({"mask": {"image": "black.png"}, "direction": "up"}), "regions[0].mask.image: image 'black.png' has no white pixel", base_dir=tmp_path)
    Image.fromarray(np.full((4, 4), 255, np.uint8)).save(tmp_path / "white.jpg")
    expect_error(doc({"mask": {"image": "white.jpg"}, "direction": "up"}), "regions[0].mask.image: ", base_dir=tmp_path)
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    expect_error(doc({"mask": {"image": "junk.png"}, "direction": "up"}), "regions[0].mask.image: cannot read", base_dir=tmp_path)
    expect_error(doc({"mask": {"image": "a\x00b.png"}, "direction": "up"}), "regions[0].mask.image: ", base_dir=tmp_path)
    expect_error(doc({"mask": {"image": ""}, "direction": "up"}), "regions[0].mask.image: must be a non-empty path")


def test_error_frame_range():
    seg = lambda a, b: {"mask": "all", "segments": [{"frames": [0, 3], "direction": "up"}, {"frames": [a, b], "direction": "up"}]}
    expect_error(doc(seg(8, 16), frames=16), "regions[0].segments[1].frames: frame 16 is past the end (16 frames)")
    expect_error(doc(seg(4, 8)), "regions[0].segments[1].frames: frame 8 is past the end (8 frames)")
    expect_error(doc(seg(-1, 2)), "regions[0].segments[1].frames: frame -1 is negative")
    expect_error(doc(seg(6, 5)), "regions[0].segments[1].frames: start 6 is after end 5")
    expect_error(doc(seg(3, 5)), "regions[0].segments[1].frames: frames 3-5 overlap segments[0] (frames 0-3)")
    expect_error(doc(seg(4, 4), frames=4), "regions[0].segments[1].frames: frame 4 is past the end (4 frames)")


def test_error_direction():
    expect_error(doc({"mask": "all", "direction": "sideways"}), "regions[0].direction: unknown direction 'sideways'")
    expect_error(
        doc({"mask": "all", "segments": [{"frames": [0, 1], "direction": "Left"}]}),
        "regions[0].segments[0].direction: unknown direction 'Left'",
    )
    expect_error(doc({"mask": "all", "direction": [0, 0]}), "regions[0].direction: direction vector must be non-zero")
    expect_error(doc({"mask": "all", "direction": [0.0, -0.0]}), "regions[0].direction: direction vector must be non-zero")
    expect_error(doc({"mask": "all", "direction": [1, 0, 0]}), "regions[0].direction: must have exactly 2")
    # tiny and huge vectors normalise fine
    np.testing.assert_allclose(one({"mask": "all", "direction": [5e-324, 0]}).displacements[0], [DEFAULT_SPEED, 0])
    np.testing.assert_allclose(one({"mask": "all", "direction": [1e308, 1e308]}).displacements[0], [DEFAULT_SPEED * 0.5**0.5] * 2)


def test_error_covers_no_pixel():
    region = one({"mask": {"circle": [0.75, 0.25, 0.01]}, "direction": "up"})
    with pytest.raises(TrajectoryError) as info:
        region.rasterize(8, 8)
    assert str(info.value) == "regions[0].mask: covers no pixel at 8x8"
    assert region.rasterize(400, 400).any()
    traj = parse_trajectory(doc(GOOD, {"mask": {"box": [0.5, 0.5, 0.51, 0.51]}, "direction": "up"}))
    with pytest.raises(TrajectoryError, match=r"^regions\[1\]\.mask: covers no pixel at 4x6$"):
        traj.masks(4, 6)
    with pytest.raises(TrajectoryError, match="rasterize: height"):
        region.rasterize(0, 8)


def test_error_bad_loader_arguments():
    expect_error({"version": 1, "regions": [GOOD]}, "default_frames: must be in [2, 4096], got 1", default_frames=1)
    with pytest.raises(TrajectoryError):
        load_trajectory(None)  # type: ignore[arg-type]


def test_messages_stay_on_one_line():
    expect_error(doc(dict(GOOD, **{"bad\nkey\u2028": 1})), "regions[0]: unknown key 'bad\\nkey")
    expect_error(doc({"mask": "all", "direction": "up\r\nwards"}), "regions[0].direction: unknown direction")
    expect_error([], "my\\nfile: must be an object", source="my\nfile")


def test_huge_lists_rejected_quickly():
    expect_error(doc({"mask": "all", "points": [[0.5, 0.5]] * 100_000}), "regions[0].points: must have at most")
    expect_error(doc({"mask": {"polygon": [[0.5, 0.5]] * 100_000}, "direction": "up"}), "regions[0].mask.polygon: must have at most")
    expect_error({"version": 1, "regions": [GOOD] * 100_000}, "regions: must have at most")
    segs = [{"frames": [0, 0], "direction": "up"}] * 100_000
    expect_error(doc({"mask": "all", "segments": segs}), "regions[0].segments: must have at most 8 segments")


# --------------------------------------------------------------------------- properties

KEYS = [
    "version", "frames", "regions", "mask", "box", "circle", "polygon", "image",
    "points", "direction", "speed", "segments", "colour",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["all", "left", "up-right", "", "x.png", "\n"]),
    st.text(max_size=8),
)
json_like = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=5)), children, max_size=5),
    ),
    max_leaves=30,
)


coord = st.floats(0.0, 1.0, allow_nan=False)
speed = st.floats(1e-3, 1.0, allow_nan=False)
direction = st.one_of(
    st.sampled_from(list(DIRECTIONS)),
    st.tuples(st.floats(-5, 5, allow_nan=False), st.floats(-5, 5, allow_nan=False))
    .filter(lambda v: max(abs(v[0]), abs(v[1])) > 1e-3)
    .map(list),
)


@st.composite
def box_mask(draw):
    xs = sorted(draw(st.lists(coord, min_size=2, max_size=2, unique=True)))
    ys = sorted(draw(st.lists(coord, min_size=2, max_size=2, unique=True)))
    return {"box": [xs[0], ys[0], xs[1], ys[1]]}


@st.composite
def polygon_mask(draw):
    n = draw(st.integers(3, 7))
    cx, cy = draw(coord), draw(coord)
    r = draw(st.floats(0.05, 0.5))
    pts = [
        [min(1.0, max(0.0, cx + r * math.cos(2 * math.pi * k / n))), min(1.0, max(0.0, cy + r * math.sin(2 * math.pi * k / n)))]
        for k in range(n)
    ]
    area = 0.5 * abs(sum(pts[k][0] * pts[k - 1][1] - pts[k - 1][0] * pts[k][1] for k in range(n)))
    assume(area > 1e-6)
    return {"polygon": pts}


masks = st.one_of(
    st.just("all"),
    box_mask(),
    st.builds(lambda cx, cy, r: {"circle": [cx, cy, r]}, coord, coord, st.floats(1e-3, 1.0)),
    polygon_mask(),
)


@st.composite
def segments(draw, frames):
    cuts = sorted(draw(st.lists(st.integers(0, frames - 1), min_size=1, max_size=6, unique=True)))
    out = []
    for a, nxt in zip(cuts, cuts[1:] + [frames]):
        b = draw(st.integers(a, nxt - 1))
        seg = {"frames": [a, b], "direction": draw(direction)}
        if draw(st.booleans()):
            seg["speed"] = draw(speed)
        out.append(seg)
    return out


@st.composite
def valid_region(draw, frames):
    region = {"mask": draw(masks)}
    kind = draw(st.sampled_from(["points", "direction", "segments"]))
    if kind == "points":
        region["points"] = draw(st.lists(st.lists(coord, min_size=2, max_size=2), min_size=2, max_size=12))
    elif kind == "direction":
        region["direction"] = draw(direction)
        if draw(st.booleans()):
            region["speed"] = draw(speed)
    else:
        region["segments"] = draw(segments(frames))
    return region


@st.composite
def valid_doc(draw):
    frames = draw(st.integers(2, 20))
    data = {"version": 1, "regions": draw(st.lists(valid_region(frames), min_size=1, max_size=3))}
    if draw(st.booleans()):
        data["frames"] = frames
        default = 16
    else:
        default = frames
    return data, default


def mostly(good, bad):
    """Draw from ``good`` three times out of four, else from ``bad``."""
    return st.integers(0, 3).flatmap(lambda k: good if k else bad)


def fuzz_region():
    """Regions of roughly the right shape with garbage mixed in, so parsing goes deep."""
    number = mostly(st.floats(0, 1), scalars)
    pair = st.one_of(st.lists(number, min_size=2, max_size=2), st.lists(number, max_size=3), json_like)
    bad_mask = st.one_of(
        st.builds(lambda v: {"box": v}, st.lists(number, min_size=3, max_size=5)),
        st.builds(lambda v: {"circle": v}, st.lists(number, min_size=2, max_size=4)),
        st.builds(lambda v: {"polygon": v}, st.lists(pair, max_size=5)),
        st.builds(lambda v: {"image": v}, st.one_of(st.text(max_size=5), scalars)),
        st.dictionaries(st.sampled_from(KEYS[3:8]), json_like, max_size=2),
        json_like,
    )
    mask = mostly(masks, bad_mask)
    direction = mostly(st.sampled_from(list(DIRECTIONS)), st.one_of(st.lists(number, max_size=3), json_like))
    segment = st.fixed_dictionaries(
        {"frames": mostly(st.lists(st.integers(-2, 10), max_size=3), json_like), "direction": direction},
        optional={"speed": number},
    )
    return st.fixed_dictionaries(
        {"mask": mask},
        optional={
            "points": mostly(st.lists(pair, max_size=4), json_like),
            "direction": direction,
            "speed": number,
            "segments": mostly(st.lists(segment, max_size=3), json_like),
        },
    )


fuzz_docs = st.fixed_dictionaries(
    {"version": st.just(1), "regions": st.lists(fuzz_region(), min_size=1, max_size=3)},
    optional={"frames": st.integers(2, 10)},
)


def check_parse_never_crashes(data):
    try:
        traj = parse_trajectory(data)
    except TrajectoryError as err:
        message = str(err)
        assert message and len(message.splitlines()) == 1 and "\n" not in message
        assert not message.startswith(":")
    else:
        assert isinstance(traj, Trajectory)
        json.dumps(traj.to_dict(), allow_nan=False)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_like, st.dictionaries(st.sampled_from(KEYS[:3]), json_like)))
def test_property_arbitrary_values_give_trajectory_or_trajectory_error(data):
    check_parse_never_crashes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fuzz_docs)
def test_property_garbage_inside_regions_gives_trajectory_or_trajectory_error(data):
    check_parse_never_crashes(data)


@settings(max_examples=150, deadline=None)
@given(valid_doc())
def test_property_valid_documents_round_trip(case):
    data, default = case
    traj = parse_trajectory(data, default_frames=default)
    out = traj.to_dict()
    text = json.dumps(out, allow_nan=False)
    again = parse_trajectory(json.loads(text), default_frames=3)
    assert again == traj
    assert again.to_dict() == out
    for region in traj.regions:
        assert region.path.shape == (traj.frames, 2)
        np.testing.assert_allclose(region.displacements, np.diff(region.path, axis=0))


def _locations(node, path=()):
    """All (path, value) pairs of a JSON document."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _locations(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _locations(value, path + (i,))


def _set(root, path, value):
    node = root
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


REQUIRED = {"version", "regions", "mask", "points", "direction", "segments", "frames"}


def _classify(path, data):
    """Kind of a location: 'required' key, bounded 'coordinate', 'speed', 'segment_frame' or None."""
    if not path:
        return None
    key = path[-1]
    parents = [p for p in path if isinstance(p, str)]
    if isinstance(key, str):
        # "frames" is required inside a segment but optional at top level
        if key == "frames" and len(path) == 1:
            return "optional"
        return "required" if key in REQUIRED else "optional"
    last = parents[-1] if parents else None
    if last in ("box", "polygon", "points") or (last == "circle" and key in (0, 1)):
        return "coordinate"
    if last == "frames" and "segments" in parents:
        return "segment_frame"
    return None


@settings(max_examples=200, deadline=None)
@given(valid_doc(), st.data())
def test_property_mutations_are_rejected(case, data):
    base, default = case
    parse_trajectory(base, default_frames=default)  # sanity: the original is valid
    locations = list(_locations(base))
    dicts = [p for p, v in locations if isinstance(v, dict)]
    kinds = {p: _classify(p, base) for p, _ in locations}
    mutation = data.draw(st.sampled_from(["drop", "add", "replace"]))
    doc2 = copy.deepcopy(base)
    if mutation == "drop":
        path = data.draw(st.sampled_from([p for p, k in kinds.items() if k == "required"]))
        node = doc2
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    elif mutation == "add":
        where = data.draw(st.sampled_from(dicts))
        name = data.draw(st.sampled_from(["colour", "Mask", "speeds", "z", ""]))
        node = doc2
        for key in where:
            node = node[key]
        node[name] = data.draw(json_like)
    else:
        candidates = [p for p, k in kinds.items() if k in ("coordinate", "segment_frame")]
        candidates += [p for p, k in kinds.items() if p and p[-1] == "speed"]
        assume(candidates)
        path = data.draw(st.sampled_from(candidates))
        if kinds[path] == "segment_frame":
            frames = base.get("frames", default)
            bad = data.draw(st.sampled_from([-1, frames, frames + 5, 0.5, True, None]))
        elif path[-1] == "speed":
            bad = data.draw(st.sampled_from([0, -0.1, 1.5, float("nan"), float("inf"), True, "fast"]))
        else:
            bad = data.draw(st.sampled_from([-0.01, 1.01, 7, float("nan"), float("-inf"), True, False, None, "0.5"]))
        _set(doc2, path, bad)
    with pytest.raises(TrajectoryError) as info:
        parse_trajectory(doc2, default_frames=default)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- zoom


def test_zoom_alone_scales_in_place_linearly():
    region = one({"mask": {"box": [0.2, 0.2, 0.6, 0.6]}, "zoom": 1.5}, frames=5)
    np.testing.assert_allclose(region.scales, [1.0, 1.125, 1.25, 1.375, 1.5])
    assert region.zoom == 1.5 and region.motion == {"zoom": 1.5}
    np.testing.assert_allclose(region.path, [[0.4, 0.4]] * 5)  # stays at the box's centre
    assert (region.displacements == 0).all()


def test_zoom_combines_with_a_motion_and_round_trips():
    traj = parse_trajectory(doc({"mask": "all", "direction": "left", "speed": 0.02, "zoom": 0.8}, frames=3))
    region = traj.regions[0]
    assert region.motion == {"direction": "left", "speed": 0.02, "zoom": 0.8}
    np.testing.assert_allclose(region.path[-1], [0.46, 0.5])
    np.testing.assert_allclose(region.scales, [1.0, 0.9, 0.8])
    assert parse_trajectory(json.loads(json.dumps(traj.to_dict()))) == traj
    assert one({"mask": "all", "direction": "up"}).zoom == 1.0 and (one({"mask": "all", "direction": "up"}).scales == 1).all()


@pytest.mark.parametrize(
    "region, message",
    [
        ({"mask": "all", "zoom": 0}, "regions[0].zoom: must be in [0.25, 4]"),
        ({"mask": "all", "zoom": 4.5}, "regions[0].zoom: must be in [0.25, 4]"),
        ({"mask": "all", "zoom": -1.2}, "regions[0].zoom: must be in [0.25, 4]"),
        ({"mask": "all", "zoom": "1.2"}, "regions[0].zoom: must be a number, got string"),
        ({"mask": "all", "zoom": True}, "regions[0].zoom: must be a number, got boolean"),
        ({"mask": "all", "zoom": float("nan")}, "regions[0].zoom: must be a finite number"),
        ({"mask": "all", "zoom": 1.2, "speed": 0.1}, "regions[0]: 'speed' is only allowed with 'direction'"),
        ({"mask": "all", "zoom": 1.2, "points": [[0, 0]]}, "regions[0].points: must have at least 2 points"),
        ({"mask": "all"}, "regions[0]: missing motion: give one of 'points', 'direction', 'segments', 'zoom'"),
        ({"mask": "all", "zoom": 1.2, "direction": "up", "points": [[0, 0], [1, 1]]}, "regions[0]: give exactly one of"),
    ],
)
def test_zoom_errors_name_the_field(region, message):
    expect_error(doc(region), message)


# --------------------------------------------------------------------------- point regions


def test_point_region_points_form_one_point_per_frame_kept():
    pts = [[0.1, 0.2], [0.3, 0.2], [0.5, 0.4]]
    region = one({"points": pts, "radius": 0.05}, frames=3)
    assert region.tracks.shape == (1, 3, 2) and region.radius == 0.05
    np.testing.assert_array_equal(region.tracks[0], pts)
    np.testing.assert_array_equal(region.path, pts)  # the mean of one point
    assert region.mask == {"disks": [[0.1, 0.2, 0.05]]}
    assert region.to_dict() == {"points": pts, "radius": 0.05}


def test_point_region_tracks_form_resampled_pinned_and_round_trips():
    data = doc({"tracks": [[[0.1, 0.5], [0.5, 0.5]], [[0.8, 0.2]]], "radius": 0.1}, frames=5)
    traj = parse_trajectory(data)
    region = traj.regions[0]
    assert region.tracks.shape == (2, 5, 2)
    np.testing.assert_allclose(region.tracks[0, :, 0], [0.1, 0.2, 0.3, 0.4, 0.5])  # two positions: a line
    np.testing.assert_allclose(region.tracks[0, :, 1], 0.5)
    np.testing.assert_array_equal(region.tracks[1], [[0.8, 0.2]] * 5)  # one position: a pin
    np.testing.assert_allclose(region.path, region.tracks.mean(axis=0))
    np.testing.assert_allclose(region.displacements, np.diff(region.path, axis=0))
    assert region.zoom == 1.0
    again = parse_trajectory(json.loads(json.dumps(traj.to_dict())))
    assert again == traj


def test_point_region_mask_is_the_frame0_disks_and_never_empty():
    region = one({"tracks": [[[0.25, 0.25], [0.5, 0.5]], [[0.75, 0.75]]], "radius": 0.1})
    mask = region.rasterize(20, 20)  # radius 2 px around (5, 5) and (15, 15) px from the corner
    assert mask[4, 4] and mask[15, 15] and mask[4, 6] and not mask[10, 10]
    assert mask.sum() == 2 * 12  # pixel centres (i + 0.5, j + 0.5) within 2 px: 4 + 8 per disk
    tiny = one({"points": [[0.5, 0.5]], "radius": 0.001}).rasterize(4, 4)
    assert tiny.sum() == 1 and tiny[2, 2]  # smaller than a pixel: the pixel holding the point


def test_point_regions_mix_with_mask_regions():
    traj = load_trajectory(EXAMPLES / "points_drag.json", default_frames=8)
    kinds = [r.tracks is not None for r in traj.regions]
    assert kinds == [True, True, False]
    assert traj.regions[0].tracks.shape == (1, 8, 2) and traj.regions[1].tracks.shape == (2, 8, 2)
    assert traj.regions[2].radius is None and traj.regions[2].tracks is None
    assert traj.masks(16, 16).shape == (3, 16, 16)
    np.testing.assert_allclose(traj.regions[0].tracks[0, [0, -1]], [[0.30, 0.55], [0.60, 0.55]])


@pytest.mark.parametrize(
    "region, message",
    [
        ({"tracks": [[[0, 0]]]}, "regions[0]: missing key 'radius'"),
        ({"radius": 0.1}, "regions[0]: a point region needs exactly one of 'points', 'tracks', got 0"),
        ({"points": [[0, 0]], "tracks": [[[0, 0]]], "radius": 0.1}, "regions[0]: a point region needs exactly one"),
        ({"points": [[0, 0]], "radius": 0}, "regions[0].radius: must be in (0, 1]"),
        ({"points": [[0, 0]], "radius": 1.5}, "regions[0].radius: must be in (0, 1]"),
        ({"points": [[0, 0]], "radius": "big"}, "regions[0].radius: must be a number, got string"),
        ({"points": [[0, 0]], "radius": float("nan")}, "regions[0].radius: must be a finite number"),
        ({"points": [], "radius": 0.1}, "regions[0].points: must have at least 1 points, got 0"),
        ({"tracks": [], "radius": 0.1}, "regions[0].tracks: must have at least 1 tracks, got 0"),
        ({"tracks": [[[0, 0]], "x"], "radius": 0.1}, "regions[0].tracks[1]: must be an array, got string"),
        ({"tracks": [[[0, 0]], [[0.5, 0.5], [1.2, 0]]], "radius": 0.1}, "regions[0].tracks[1][1][0]: must be in [0, 1]"),
        ({"tracks": [[[0, None]]], "radius": 0.1}, "regions[0].tracks[0][0][1]: must be a number, got null"),
        ({"points": [[0, 0]], "radius": 0.1, "direction": "up"}, "regions[0]: unknown key 'direction'"),
        ({"mask": "all", "points": [[0, 0], [1, 1]], "radius": 0.1}, "regions[0]: unknown key 'radius'"),
        ({"points": [[0, 0], [1, 1]]}, "regions[0]: missing key 'mask'"),  # no radius: a mask region, as before
    ],
)
def test_point_region_errors_name_the_field(region, message):
    expect_error(doc(region), message)


def test_resample_positions_exact_smooth_and_straight():
    from moft.io.trajectory import resample_positions

    knots = np.stack([np.linspace(0, 1, 6), np.sin(np.linspace(0, 3, 6))], axis=1)  # (6, 2)
    np.testing.assert_array_equal(resample_positions(knots, 6), knots)  # counts match: unchanged
    out = resample_positions(knots, 26)  # every 5th frame is a knot
    np.testing.assert_allclose(out[::5], knots, atol=1e-12)
    # smooth: second differences scale with the step squared (a polyline's would not: ~ step)
    stride = 5 / 25
    assert np.abs(np.diff(out[:, 1], 2)).max() <= 2 * np.abs(np.diff(knots[:, 1], 2)).max() * stride**2
    # collinear, unevenly spaced positions resample onto their line y = 0.5 x + 0.1
    line = np.array([[0.0, 0.1], [0.1, 0.15], [0.7, 0.45], [0.8, 0.5]])
    out = resample_positions(line, 13)
    np.testing.assert_allclose(out[:, 1], 0.5 * out[:, 0] + 0.1, atol=1e-12)
    np.testing.assert_array_equal(resample_positions(line[:1], 4), np.repeat(line[:1], 4, axis=0))
