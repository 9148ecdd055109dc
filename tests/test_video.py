"""Tests for moft.video: round trips, conversions and atomic writes."""

from __future__ import annotations

import os

import numpy as np
import pytest

import moft.video as video_module
from moft.video import (
    VideoError,
    atomic_write_bytes,
    atomic_write_text,
    read_video,
    resize_video,
    to_float,
    to_uint8,
    write_video,
)

PALETTE = np.array(
    [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 128, 255], [40, 200, 90], [250, 250, 0]], np.uint8
)


def flat_colour_video(frames=6, height=16, width=20) -> np.ndarray:
    """(F, H, W, 3) uint8 of a few flat colour blocks that change per frame; frames 2 and 3 are equal."""
    video = np.zeros((frames, height, width, 3), np.uint8)
    for k in range(frames):
        j = k if k != 3 else 2
        video[k, : height // 2, : width // 2] = PALETTE[j % len(PALETTE)]
        video[k, : height // 2, width // 2 :] = PALETTE[(j + 1) % len(PALETTE)]
        video[k, height // 2 :] = PALETTE[(j + 3) % len(PALETTE)]
    return video


def smooth_video(frames=8, height=32, width=32) -> np.ndarray:
    """(F, H, W, 3) uint8 of moving smooth gradients (compresses well in H.264)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    video = []
    for k in range(frames):
        red = 0.5 + 0.4 * np.sin((xx + 2 * k) / 6.0)
        green = 0.5 + 0.4 * np.cos(yy / 5.0)
        blue = 0.5 + 0.3 * np.sin((xx + yy - k) / 8.0)
        video.append(np.stack([red, green, blue], axis=-1))
    return (np.stack(video) * 255).round().astype(np.uint8)


def leftovers(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder) if ".tmp" in name)


# ---------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------


def test_gif_round_trip_is_exact(tmp_path):
    video = flat_colour_video()
    out = write_video(tmp_path / "clip.gif", video, fps=8)
    assert out == tmp_path / "clip.gif"
    back = read_video(out)
    assert back.dtype == np.uint8 and back.shape == video.shape
    np.testing.assert_array_equal(back, video)
    assert leftovers(tmp_path) == []


def test_gif_keeps_identical_frames_and_timing(tmp_path):
    from PIL import Image

    still = np.repeat(flat_colour_video(frames=1), 5, axis=0)  # 5 identical frames
    path = write_video(tmp_path / "still.gif", still, fps=8)
    assert read_video(path).shape == still.shape
    with Image.open(path) as image:
        assert image.n_frames == 5
        durations = []
        for k in range(image.n_frames):
            image.seek(k)
            durations.append(image.info["duration"])
        assert image.info.get("loop") == 0
    assert all(d in (120, 130) for d in durations)  # 12.5 ms frames in whole centiseconds
    assert sum(durations) == pytest.approx(5 * 125, abs=10)


def test_gif_float_frames(tmp_path):
    video = flat_colour_video()
    path = write_video(tmp_path / "f.gif", video.astype(np.float32) / 255)
    np.testing.assert_array_equal(read_video(path), video)


def test_mp4_round_trip_is_close(tmp_path):
    video = smooth_video()
    path = write_video(tmp_path / "clip.mp4", video, fps=8)
    back = read_video(path)
    assert back.shape == video.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - video).mean() < 6
    assert read_video(path, max_frames=3).shape == (3, 32, 32, 3)
    assert leftovers(tmp_path) == []


def test_mp4_odd_size_is_padded(tmp_path):
    video = smooth_video(frames=4, height=15, width=17)
    back = read_video(write_video(tmp_path / "odd.mp4", video))
    assert back.shape == (4, 16, 18, 3)
    assert np.abs(back[:, :15, :17].astype(int) - video).mean() < 8


def test_png_folder_round_trip(tmp_path):
    video = smooth_video(frames=5)
    folder = write_video(tmp_path / "nested" / "frames", video)
    assert sorted(os.listdir(folder)) == [f"{k:05d}.png" for k in range(5)]
    np.testing.assert_array_equal(read_video(folder), video)
    assert read_video(folder, max_frames=2).shape == (2, 32, 32, 3)
    # rewriting replaces the folder as a whole: no stale frames
    write_video(folder, video[:2])
    assert sorted(os.listdir(folder)) == ["00000.png", "00001.png"]
    assert leftovers(folder.parent) == []


def test_folder_sorted_naturally_and_grey_rgba_converted(tmp_path):
    import imageio.v3 as iio

    folder = tmp_path / "mixed"
    folder.mkdir()
    grey = np.full((8, 8), 10, np.uint8)
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    iio.imwrite(folder / "f10.png", rgba)
    iio.imwrite(folder / "f2.png", grey)
    (folder / "notes.txt").write_text("ignored")
    video = read_video(folder)
    assert video.shape == (2, 8, 8, 3)
    assert (video[0] == 10).all()  # f2 before f10
    assert (video[1] == (200, 0, 0)).all()


def test_single_image_is_one_frame(tmp_path):
    import imageio.v3 as iio

    image = smooth_video(frames=1)[0]
    iio.imwrite(tmp_path / "frame.png", image)
    np.testing.assert_array_equal(read_video(tmp_path / "frame.png"), image[None])


# ---------------------------------------------------------------------------
# errors and atomicity
# ---------------------------------------------------------------------------


def test_read_errors_name_the_path(tmp_path):
    cases = [tmp_path / "missing.mp4", tmp_path / "clip.xyz", tmp_path / "broken.gif", tmp_path / "empty"]
    (tmp_path / "clip.xyz").write_bytes(b"data")
    (tmp_path / "broken.gif").write_bytes(b"not a gif")
    (tmp_path / "empty").mkdir()
    for path in cases:
        with pytest.raises(VideoError) as info:
            read_video(path)
        message = str(info.value)
        assert str(path) in message and "\n" not in message
    assert issubclass(VideoError, ValueError)


def test_bad_frames_raise_and_leave_nothing(tmp_path):
    bad_inputs = [
        np.zeros((4, 8, 8), np.uint8),
        np.zeros((4, 8, 8, 4), np.uint8),
        np.zeros((0, 8, 8, 3), np.uint8),
        np.full((2, 8, 8, 3), np.nan),
        np.full((2, 8, 8, 3), 300, np.int32),
    ]
    for name in ("a.gif", "a.mp4", "a_frames"):
        for frames in bad_inputs:
            with pytest.raises(VideoError):
                write_video(tmp_path / name, frames)
    with pytest.raises(VideoError):
        write_video(tmp_path / "a.avi", smooth_video(frames=2))
    assert os.listdir(tmp_path) == []


def test_encoder_failure_leaves_no_partial_file(tmp_path, monkeypatch):
    import imageio.v3 as iio

    def failing_imwrite(path, *args, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"half a video")
        raise RuntimeError("encoder crashed\nsecond line")

    monkeypatch.setattr(iio, "imwrite", failing_imwrite)
    with pytest.raises(VideoError) as info:
        write_video(tmp_path / "clip.mp4", smooth_video(frames=2))
    assert "encoder crashed" in str(info.value) and "\n" not in str(info.value)
    assert os.listdir(tmp_path) == []

    def failing_gif(frames, fps):
        raise RuntimeError("gif failed")

    monkeypatch.setattr(video_module, "_encode_gif", failing_gif)
    existing = tmp_path / "keep.gif"
    existing.write_bytes(b"old")
    with pytest.raises(VideoError):
        write_video(existing, smooth_video(frames=2))
    assert existing.read_bytes() == b"old"  # the old file survives a failed overwrite
    assert os.listdir(tmp_path) == ["keep.gif"]


def test_folder_write_failure_keeps_old_frames(tmp_path, monkeypatch):
    folder = write_video(tmp_path / "frames", smooth_video(frames=3))
    calls = []

    def failing_imwrite(file, image):
        calls.append(file)
        if len(calls) == 2:
            raise OSError("disk full")
        return True

    monkeypatch.setattr(video_module.cv2, "imwrite", failing_imwrite)
    with pytest.raises(VideoError, match="disk full"):
        write_video(folder, smooth_video(frames=3))
    assert sorted(os.listdir(folder)) == ["00000.png", "00001.png", "00002.png"]
    assert os.listdir(tmp_path) == ["frames"]


def test_atomic_write_text_and_bytes(tmp_path):
    target = tmp_path / "deep" / "dir" / "scores.json"
    atomic_write_text(target, '{"a": 1}')
    assert target.read_text() == '{"a": 1}'
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert leftovers(target.parent) == []
    # normal permissions (not the 0600 of mkstemp)
    umask = os.umask(0)
    os.umask(umask)
    assert (target.stat().st_mode & 0o777) == (0o666 & ~umask)


# ---------------------------------------------------------------------------
# conversions and resizing
# ---------------------------------------------------------------------------


def test_to_float_to_uint8():
    frames = np.array([0, 1, 128, 255], np.uint8)
    as_float = to_float(frames)
    assert as_float.dtype == np.float32 and as_float[-1] == 1.0
    np.testing.assert_array_equal(to_uint8(as_float), frames)
    assert to_uint8(np.array([-0.5, 0.5, 1.5])).tolist() == [0, 128, 255]
    assert to_uint8(np.array([True, False])).tolist() == [255, 0]
    assert to_float(np.array([0.25], np.float64)).dtype == np.float32
    with pytest.raises(ValueError):
        to_uint8(np.array([np.nan]))
    with pytest.raises(ValueError):
        to_uint8(np.array([256]))


def test_resize_video():
    video = smooth_video(frames=3, height=32, width=32)
    small = resize_video(video, 16, 8)
    assert small.shape == (3, 16, 8, 3) and small.dtype == np.uint8
    big = resize_video(video.astype(np.float32) / 255, 48, 64)
    assert big.shape == (3, 48, 64, 3) and big.dtype == np.uint8
    flat = np.full((2, 10, 10, 3), 77, np.uint8)
    assert (resize_video(flat, 5, 5) == 77).all() and (resize_video(flat, 20, 30) == 77).all()
    np.testing.assert_array_equal(resize_video(video, 32, 32), video)
    with pytest.raises(ValueError):
        resize_video(video[0], 8, 8)


def test_write_report_writes_json_and_markdown_beside_it(tmp_path):
    import json

    from moft.video import write_report

    out = write_report(tmp_path / "deep" / "r.json", {"a": 1}, "| a |\n")
    assert json.loads(out.read_text()) == {"a": 1} and (tmp_path / "deep" / "r.md").read_text() == "| a |\n"
