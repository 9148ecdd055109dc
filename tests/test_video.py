"""Tests for moft.io.video (round trips, conversions), moft.io.outputs (atomic writes, output sets) and
moft.io.jsonio (strict JSON, reports)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import moft.io.video as video_module
from moft.io.jsonio import strict_json, write_report
from moft.io.outputs import OutputError, atomic_write_bytes, atomic_write_text, output_set
from moft.io.video import (
    VideoError,
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

    out = write_report(tmp_path / "deep" / "r.json", {"a": 1}, "| a |\n")
    assert json.loads(out.read_text()) == {"a": 1} and (tmp_path / "deep" / "r.md").read_text() == "| a |\n"


# ---------------------------------------------------------------------------
# any clip in: read_clip's window, stride and fit
# ---------------------------------------------------------------------------

BIKES = __import__("pathlib").Path(__file__).parent / "data" / "bikes.mp4"  # real footage: 640x272, 250 frames, 25 fps


def numbered_gif(path, frames: int, fps: float, height=24, width=40):
    """A lossless GIF whose frame k is flat grey 2k (so the frame index reads back from the pixels)."""
    video = np.repeat(np.repeat(np.repeat((2 * np.arange(frames, dtype=np.uint8))[:, None, None, None], height, 1),
                                width, 2), 3, 3)  # (F, H, W, 3)
    return write_video(path, video, fps=fps)


def indices_of(frames) -> list[int]:
    return [int(f[..., 0].mean().round()) // 2 for f in frames]


def test_default_stride_spans_about_one_second_like_the_models_clips(tmp_path):
    gif = numbered_gif(tmp_path / "n.gif", 100, fps=25)
    clip = video_module.read_clip(gif, 8)
    assert clip.source_fps == 25 and clip.stride == 3  # 25 fps / 8 fps
    assert indices_of(clip.frames) == [0, 3, 6, 9, 12, 15, 18, 21]  # 21 frames at 25 fps ~ 0.84 s ~ 7 frames at 8 fps
    assert indices_of(video_module.read_clip(gif, 8, start=10, stride=5).frames) == list(range(10, 50, 5))
    assert video_module.read_clip(gif, 8, fps=12.5).stride == 2
    assert video_module.read_clip(gif, 4, clip_fps=25).stride == 1  # a model of 25 fps clips


def test_default_stride_shrinks_for_a_short_clip_but_an_explicit_one_does_not(tmp_path):
    gif = numbered_gif(tmp_path / "short.gif", 10, fps=25)
    assert indices_of(video_module.read_clip(gif, 8).frames) == list(range(8))  # stride 3 needs 22 frames
    assert indices_of(video_module.read_clip(gif, 4).frames) == [0, 3, 6, 9]
    with pytest.raises(VideoError, match="too few frames.*stride 3 need 22"):
        video_module.read_clip(gif, 8, stride=3)
    with pytest.raises(VideoError, match="too few frames"):
        video_module.read_clip(gif, 8, start=5)
    with pytest.raises(VideoError, match="too few frames"):
        video_module.read_clip(gif, 11)


def test_a_frame_folder_has_no_frame_rate(tmp_path):
    folder = write_video(tmp_path / "frames", np.stack([np.full((8, 8, 3), 2 * k, np.uint8) for k in range(12)]))
    assert indices_of(video_module.read_clip(folder, 8).frames) == list(range(8))  # default stride 1
    assert indices_of(video_module.read_clip(folder, 3, stride=4).frames) == [0, 4, 8]
    with pytest.raises(VideoError, match="no frame rate"):
        video_module.read_clip(folder, 8, fps=4)


def test_fit_crop_resize_pad_against_a_three_band_frame():
    frame = np.zeros((1, 32, 64, 3), np.uint8)  # wide: red | green (centre half) | blue
    frame[:, :, :16, 0] = 255
    frame[:, :, 16:48, 1] = 255
    frame[:, :, 48:, 2] = 255
    crop = video_module.fit_video(frame, 16, 16, "crop")
    assert (crop[..., 1] == 255).all() and crop[..., [0, 2]].max() == 0  # only the centre square remains
    stretched = video_module.fit_video(frame, 16, 16, "resize")
    assert (stretched[0, :, 0, 0] == 255).all() and (stretched[0, :, -1, 2] == 255).all()  # all three bands
    pad = video_module.fit_video(frame, 16, 16, "pad")  # 64x32 -> 64x64 with 16-row bars -> 16x16
    assert pad[0, :4].max() == 0 and pad[0, -4:].max() == 0 and (pad[0, 6:10, 0, 0] == 255).all()
    tall = video_module.fit_video(np.transpose(frame, (0, 2, 1, 3)), 16, 16, "crop")  # tall: crop rows
    assert (tall[..., 1] == 255).all()
    with pytest.raises(VideoError, match="fit must be one of"):
        video_module.fit_video(frame, 16, 16, "squash")


def test_a_real_clip_decodes_only_the_frames_it_needs(monkeypatch):
    import imageio.v3 as iio

    decoded = []
    real = iio.imiter

    def counting(*args, **kwargs):
        for image in real(*args, **kwargs):
            decoded.append(image.shape)
            yield image

    monkeypatch.setattr(iio, "imiter", counting)
    clip = video_module.read_clip(BIKES, 8, size=(32, 32))
    assert clip.frames.shape == (8, 32, 32, 3) and clip.frames.dtype == np.uint8
    assert clip.source_fps == 25 and clip.stride == 3 and clip.describe()["fit"] == "crop"
    assert len(decoded) == 22 and decoded[0] == (272, 640, 3)  # frames 0..21 of 250, then the decoder stops
    wide = video_module.read_clip(BIKES, 8, size=(32, 48), fit="pad", start=200, stride=6)
    assert wide.frames.shape == (8, 32, 48, 3) and wide.start == 200
    assert read_video(BIKES, num_frames=8, size=(32, 32)).shape == (8, 32, 32, 3)


@pytest.mark.parametrize("rule, text", [
    ({"start": -1}, "start must be"), ({"stride": 0}, "stride must be"), ({"fps": 0.0}, "fps must be"),
    ({"fps": float("nan")}, "fps must be"), ({"stride": 2, "fps": 4.0}, "at most one"), ({"fit": "zoom"}, "fit"),
])
def test_bad_clip_rules_are_one_line_errors(rule, text):
    with pytest.raises(VideoError, match=text):
        video_module.read_clip(BIKES, 8, **rule)


def test_unreadable_and_empty_clips_are_one_line_errors(tmp_path):
    (tmp_path / "text.mp4").write_text("not a video")
    (tmp_path / "cut.mp4").write_bytes(BIKES.read_bytes()[:2000])  # a download cut short
    (tmp_path / "empty").mkdir()
    for path, text in [("text.mp4", "unreadable video"), ("cut.mp4", "unreadable video|no frames"),
                       ("empty", "no .png/.jpg frames"), ("missing.mp4", "no such file")]:
        with pytest.raises(VideoError, match=text) as info:
            video_module.read_clip(tmp_path / path, 8)
        assert "\n" not in str(info.value) and path in str(info.value)


# ---------------------------------------------------------------------------
# never clobber, all or nothing, strict JSON
# ---------------------------------------------------------------------------


def test_a_video_name_over_an_existing_folder_keeps_the_folder(tmp_path):
    folder = tmp_path / "o.gif"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(VideoError, match="existing folder"):
        write_video(folder, smooth_video())
    assert (folder / "keep.txt").read_text() == "mine"


def test_output_set_writes_all_or_nothing(tmp_path):
    (tmp_path / "b.json").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with output_set() as stage:
            write_video(stage(tmp_path / "a.gif"), flat_colour_video())
            stage(tmp_path / "b.json").write_text("new")
            raise KeyboardInterrupt  # Ctrl-C after the video is written
    assert sorted(os.listdir(tmp_path)) == ["b.json"] and (tmp_path / "b.json").read_text() == "old"
    with output_set() as stage:
        write_video(stage(tmp_path / "a.gif"), flat_colour_video())
        stage(tmp_path / "b.json").write_text("new")
    assert sorted(os.listdir(tmp_path)) == ["a.gif", "b.json"] and (tmp_path / "b.json").read_text() == "new"
    assert read_video(tmp_path / "a.gif").shape == flat_colour_video().shape


def test_strict_json_writes_null_and_says_why():
    import json

    import torch

    data = {"psnr": np.float32(31.5), "losses": [{"loss": float("inf")}, {"loss": 2.0}],
            "curve": torch.tensor([1.0, float("nan")]), "ok": None}
    text = strict_json(data)
    back = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in the JSON"))
    assert back["psnr"] == 31.5 and back["curve"] == [1.0, None] and back["null_because"] == {"curve[1]": "nan"}
    assert back["losses"][0] == {"loss": None, "null_because": {"loss": "+inf"}} and back["losses"][1] == {"loss": 2.0}


def test_write_report_is_strict_json(tmp_path):
    import json

    write_report(tmp_path / "r.json", {"ssim": float("nan")}, "| ssim |\n")
    text = (tmp_path / "r.json").read_text()
    assert "NaN" not in text and json.loads(text) == {"ssim": None, "null_because": {"ssim": "nan"}}


def test_a_webm_of_odd_size_length_and_frame_rate(tmp_path):
    import imageio.v3 as iio

    frames = np.repeat((2 * np.arange(121, dtype=np.uint8))[:, None, None, None], 58, 1)  # frame k: grey 2k
    frames = np.ascontiguousarray(np.broadcast_to(frames, (121, 58, 102, 3)))  # (F, H, W, 3), 102x58, odd length
    iio.imwrite(tmp_path / "a.webm", frames, fps=30, codec="libvpx-vp9", macro_block_size=1)
    clip = video_module.read_clip(tmp_path / "a.webm", 8, size=(32, 32), start=1)
    assert clip.source_fps == 30 and clip.stride == 4  # 30 / 8 = 3.75
    got = [int(round(f[..., 0].mean() / 2)) for f in clip.frames]  # lossy: grey levels come back within 1
    assert np.abs(np.array(got) - np.arange(1, 30, 4)).max() <= 1, got


def test_output_set_refuses_a_staged_file_never_written_and_touches_nothing(tmp_path):
    (tmp_path / "b.json").write_text("old")
    with pytest.raises(OutputError, match="a.gif: staged but never written"):
        with output_set() as stage:
            stage(tmp_path / "a.gif")  # staged, but the caller forgot to write it
            stage(tmp_path / "b.json").write_text("new")
    assert sorted(os.listdir(tmp_path)) == ["b.json"] and (tmp_path / "b.json").read_text() == "old"
