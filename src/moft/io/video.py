"""Reading, writing and resizing videos as numpy arrays.

Every video in moft is a numpy array of shape ``(F, H, W, 3)``: ``uint8`` in
0..255 or floating point in [0, 1], RGB channel order.

Example:
    >>> from moft.io.video import read_video, write_video, resize_video
    >>> frames = read_video("clip.mp4", max_frames=16)   # (F, H, W, 3) uint8     # doctest: +SKIP
    >>> small = resize_video(frames, 256, 256)            # (F, 256, 256, 3) uint8  # doctest: +SKIP
    >>> write_video("out/clip.gif", small, fps=8)          # atomic write          # doctest: +SKIP
    >>> model = read_video("phone.mp4", num_frames=8, size=(32, 32))  # any clip -> the model's   # doctest: +SKIP

Notes:
    * GIF frames are written through Pillow one frame at a time and assembled
      here, because Pillow's own multi-frame GIF writer silently merges
      identical consecutive frames (a still video would come back with fewer
      frames). Each frame gets its own 256-colour palette, so videos with at
      most 256 colours per frame round-trip exactly. GIF delays are whole
      centiseconds; for fps that do not divide 100 the per-frame delays
      alternate (e.g. 12/13 cs at 8 fps) so the total duration is right.
    * MP4 is H.264 (libx264, yuv420p, lossy). yuv420p needs even sizes, so an
      odd height or width is padded by one replicated row/column before
      encoding; reading the file back gives the padded size.
    * All writers are atomic (``moft.io.outputs``): data goes to a hidden temporary
      file (or folder) next to the target and is moved into place with
      ``os.replace``. A failed write leaves neither a partial target nor
      temporary leftovers.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np
from PIL import Image

from .outputs import atomic_file, atomic_write_bytes, temp_sibling

__all__ = [
    "VideoError",
    "read_video",
    "read_clip",
    "Clip",
    "fit_video",
    "check_clip_rule",
    "FITS",
    "write_video",
    "resize_video",
    "to_float",
    "to_uint8",
    "VIDEO_SUFFIXES",
    "IMAGE_SUFFIXES",
]

# Suffixes read through imageio's ffmpeg plugin.
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
# Suffixes read through Pillow (a still image is a one-frame video).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")


class VideoError(ValueError):
    """A video could not be read or written; the message names the path."""


# ---------------------------------------------------------------------------
# dtype conversion
# ---------------------------------------------------------------------------


def to_float(frames: np.ndarray) -> np.ndarray:
    """Convert frames to float32 in [0, 1].

    Example:
        >>> float(to_float(np.full((2, 4, 4, 3), 255, np.uint8)).max())
        1.0

    Args:
        frames: Array of any shape. ``uint8`` (and other integer types) are
            read as 0..255 and divided by 255; ``bool`` maps to 0/1; floating
            point input is assumed to already be in [0, 1] and is only cast.

    Returns:
        float32 array of the same shape.
    """
    frames = np.asarray(frames)
    if frames.dtype == np.bool_:
        return frames.astype(np.float32)
    if np.issubdtype(frames.dtype, np.integer):
        return frames.astype(np.float32) / np.float32(255.0)
    if np.issubdtype(frames.dtype, np.floating):
        return frames.astype(np.float32, copy=False)
    raise ValueError(f"cannot convert dtype {frames.dtype} to float frames")


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Convert frames to uint8 in 0..255.

    Example:
        >>> to_uint8(np.array([0.0, 0.5, 1.0])).tolist()
        [0, 128, 255]

    Args:
        frames: Array of any shape. ``uint8`` is returned unchanged; floating
            point is read as [0, 1], clipped to that range, scaled and rounded;
            ``bool`` maps to 0/255; other integer types must already lie in
            0..255.

    Returns:
        uint8 array of the same shape.

    Raises:
        ValueError: on NaN/inf floats or integers outside 0..255.
    """
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    if frames.dtype == np.bool_:
        return frames.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(frames.dtype, np.floating):
        if not np.all(np.isfinite(frames)):
            raise ValueError("frames contain NaN or inf")
        return np.round(np.clip(frames, 0.0, 1.0) * 255.0).astype(np.uint8)
    if np.issubdtype(frames.dtype, np.integer):
        if frames.size and (frames.min() < 0 or frames.max() > 255):
            raise ValueError(f"integer frames of dtype {frames.dtype} outside 0..255")
        return frames.astype(np.uint8)
    raise ValueError(f"cannot convert dtype {frames.dtype} to uint8 frames")


def _image_to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """One decoded image (H, W), (H, W, 1|2|3|4) of any dtype -> (H, W, 3) uint8."""
    image = np.asarray(image)
    if image.dtype == np.uint16:
        image = np.round(image.astype(np.float32) / 257.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = to_uint8(image)
    if image.ndim == 2:  # grey
        image = image[:, :, None]
    if image.ndim != 3:
        raise ValueError(f"decoded image has shape {image.shape}")
    channels = image.shape[2]
    if channels in (1, 2):  # grey or grey+alpha: drop alpha, replicate
        image = np.repeat(image[:, :, :1], 3, axis=2)
    elif channels == 4:  # RGBA: drop alpha
        image = image[:, :, :3]
    elif channels != 3:
        raise ValueError(f"decoded image has {channels} channels")
    return np.ascontiguousarray(image)


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------


def _natural_key(name: str) -> list:
    """Sort key so that 'frame2.png' < 'frame10.png'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _stack_frames(frames: list[np.ndarray], path: Path) -> np.ndarray:
    if not frames:
        raise VideoError(f"{path}: no frames")
    shapes = {frame.shape for frame in frames}
    if len(shapes) != 1:
        raise VideoError(f"{path}: frames have different sizes {sorted(shapes)}")
    return np.stack(frames)  # (F, H, W, 3)


FITS = ("crop", "resize", "pad")
CLIP_FPS = 8  # frame rate of the model's clips when its moft.json names none (8 frames ~ 1 s)


@dataclass
class Clip:
    """Frames taken from a clip and the window they were taken from.

    Attributes:
        frames: ``(F, H, W, 3)`` uint8.
        start: index of the first frame taken, in the clip's frames.
        stride: clip frames between two frames taken.
        source_fps: the clip's frame rate (None: a folder or still, which has none).
        fit: how each frame was brought to the size (None: kept as decoded).
    """

    frames: np.ndarray
    start: int = 0
    stride: int = 1
    source_fps: float | None = None
    fit: str | None = None

    def describe(self) -> dict:
        """JSON-ready window (for run reports)."""
        return {"start": self.start, "stride": self.stride, "source_fps": self.source_fps, "fit": self.fit,
                "frames": int(len(self.frames))}


def check_clip_rule(*, start: int = 0, stride: int | None = None, fps: float | None = None,
                    fit: str = "crop") -> None:
    """Raise ``VideoError`` unless ``start``/``stride``/``fps``/``fit`` form a valid rule (see ``read_clip``).

    Example:
        >>> check_clip_rule(start=0, stride=3, fit="pad")
    """
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
        raise VideoError(f"start must be a frame index >= 0, got {start!r}")
    if stride is not None and fps is not None:
        raise VideoError("give at most one of stride and fps")
    if stride is not None and (isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1):
        raise VideoError(f"stride must be an integer >= 1, got {stride!r}")
    if fps is not None and not (np.isfinite(fps) and fps > 0):
        raise VideoError(f"fps must be a positive number, got {fps!r}")
    if fit not in FITS:
        raise VideoError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")


def fit_video(frames: np.ndarray, height: int, width: int, fit: str = "crop") -> np.ndarray:
    """Bring frames to ``height`` x ``width``: ``crop`` (centre crop to that aspect, then resize),
    ``resize`` (stretch) or ``pad`` (black bars to that aspect, then resize).

    Example:
        >>> fit_video(np.zeros((2, 360, 640, 3), np.uint8), 32, 32).shape
        (2, 32, 32, 3)

    Args:
        frames: ``(F, H, W, 3)`` uint8 or float in [0, 1].
        height, width: output size in pixels.
        fit: ``"crop"``, ``"resize"`` or ``"pad"``.

    Returns:
        ``(F, height, width, 3)`` uint8.
    """
    if fit not in FITS:
        raise VideoError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    frames = to_uint8(np.asarray(frames))  # (F, H, W, 3)
    _, in_h, in_w, _ = frames.shape
    if fit != "resize" and in_h * width != in_w * height:
        wide = in_w * height > in_h * width  # the clip is wider than the target aspect
        if fit == "crop":
            if wide:
                keep = max(1, round(in_h * width / height))
                left = (in_w - keep) // 2
                frames = frames[:, :, left:left + keep]
            else:
                keep = max(1, round(in_w * height / width))
                top = (in_h - keep) // 2
                frames = frames[:, top:top + keep]
        else:  # pad
            if wide:
                extra = max(0, round(in_w * height / width) - in_h)
                pad = ((0, 0), (extra // 2, extra - extra // 2), (0, 0), (0, 0))
            else:
                extra = max(0, round(in_h * width / height) - in_w)
                pad = ((0, 0), (0, 0), (extra // 2, extra - extra // 2), (0, 0))
            frames = np.pad(frames, pad)
    return resize_video(np.ascontiguousarray(frames), height, width)


def _frame_sources(path: Path):
    """``(iterator of decoded (H, W, 3) uint8 frames, source fps or None, frame count or None)``."""
    if not path.exists():
        raise VideoError(f"{path}: no such file or folder")
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _FRAME_SUFFIXES]
        files.sort(key=lambda p: _natural_key(p.name))
        if not files:
            raise VideoError(f"{path}: folder has no .png/.jpg frames")

        def read_files():
            for file in files:
                try:
                    image = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
                    if image is None:
                        raise ValueError("cv2.imread returned None")
                    if image.ndim == 3 and image.shape[2] >= 3:  # BGR(A) -> RGB(A)
                        image = image[:, :, [2, 1, 0] + list(range(3, image.shape[2]))]
                    yield _image_to_rgb_uint8(image)
                except Exception as err:  # noqa: BLE001 - any decoder failure
                    raise VideoError(f"{file}: unreadable frame ({_one_line(err)})") from err

        return read_files(), None, len(files)

    suffix = path.suffix.lower()
    if suffix == ".gif" or suffix in IMAGE_SUFFIXES:
        kwargs = {"plugin": "pillow", "mode": "RGB"}
    elif suffix in VIDEO_SUFFIXES:
        kwargs = {"plugin": "FFMPEG"}
    else:
        raise VideoError(f"{path}: unknown video suffix {path.suffix!r}")

    fps = None
    try:
        if kwargs["plugin"] == "FFMPEG":
            fps = iio.immeta(path, plugin="FFMPEG").get("fps")
        else:
            with Image.open(path) as image:
                duration = image.info.get("duration")  # ms per frame (GIF, animated PNG/WebP)
                animated = getattr(image, "n_frames", 1) > 1
            fps = 1000.0 / duration if duration and animated else None
    except Exception as err:  # noqa: BLE001 - any decoder failure
        raise VideoError(f"{path}: unreadable video ({_one_line(err)})") from err
    fps = float(fps) if fps and np.isfinite(fps) and fps > 0 else None

    def decode():
        try:
            for image in iio.imiter(path, **kwargs):  # streams: frames are decoded as they are asked for
                yield _image_to_rgb_uint8(image)
        except VideoError:
            raise
        except Exception as err:  # noqa: BLE001 - any decoder failure
            raise VideoError(f"{path}: unreadable video ({_one_line(err)})") from err

    return decode(), fps, None


def read_clip(path: str | Path, num_frames: int, *, size: tuple[int, int] | None = None, start: int = 0,
              stride: int | None = None, fps: float | None = None, fit: str = "crop",
              clip_fps: float = CLIP_FPS) -> Clip:
    """Take ``num_frames`` frames of any clip at the model's size, decoding only what is needed.

    The rule, each part overridable:

    * **window**: frames ``start, start + stride, ..., start + (num_frames - 1) * stride`` of the clip.
    * **stride**: ``stride`` if given; else ``round(source fps / fps)`` if ``fps`` is given (the rate
      to sample the clip at; at least 1: a clip is never upsampled); else ``round(source fps / clip_fps)``, so the frames span about as much
      time as the model's clips (8 frames at 8 fps = 1 s: a 25 fps clip is read at stride 3). Only this
      default stride shrinks (down to 1) when the clip is too short for it. A folder of frames or a
      still has no frame rate: the default stride is 1 and ``fps`` is refused.
    * **size**: each frame is brought to ``size = (height, width)`` as it is decoded, by ``fit``:
      ``"crop"`` (default: centre crop to the size's aspect, then resize), ``"resize"`` (stretch) or
      ``"pad"`` (black bars, then resize). ``size=None`` keeps the decoded size.

    Decoding streams and stops after the last frame of the window.

    Example:
        >>> clip = read_clip("clip.mp4", 8, size=(32, 32))        # doctest: +SKIP
        >>> clip.frames.shape, clip.stride                        # doctest: +SKIP
        ((8, 32, 32, 3), 3)

    Args:
        path: any file ``read_video`` reads (MP4/WebM/... via ffmpeg, GIF, PNG/JPG, a frame folder).
        num_frames: frames to take.
        size: ``(height, width)`` in pixels, or None.
        start: first clip frame to take.
        stride: clip frames between frames taken (exclusive with ``fps``).
        fps: sample the clip at this rate (exclusive with ``stride``).
        fit: ``"crop"``, ``"resize"`` or ``"pad"``.
        clip_fps: frame rate of the model's clips (the default stride's reference).

    Returns:
        A ``Clip`` (frames ``(num_frames, H, W, 3)`` uint8 and the window taken).

    Raises:
        VideoError: a bad rule, a missing/unreadable/empty file, or too few frames; one line naming
            the path.
    """
    path = Path(path)
    check_clip_rule(start=start, stride=stride, fps=fps, fit=fit)
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise VideoError(f"{path}: num_frames must be >= 1, got {num_frames!r}")
    if size is not None and (len(size) != 2 or min(int(v) for v in size) < 1):
        raise VideoError(f"{path}: size must be (height, width) >= 1, got {size!r}")
    frames, source_fps, count = _frame_sources(path)
    if stride is not None:
        step, flexible = int(stride), False
    elif fps is not None:
        if source_fps is None:
            raise VideoError(f"{path}: has no frame rate (a folder or a still); give a stride instead of fps")
        step, flexible = max(1, round(source_fps / fps)), False
    else:
        step, flexible = (max(1, round(source_fps / clip_fps)) if source_fps else 1), True
    last = start + (num_frames - 1) * step  # index of the last frame the window needs
    kept: dict[int, np.ndarray] = {}  # clip index -> frame at the output size
    seen = 0
    for index, frame in enumerate(frames):
        seen = index + 1
        if index >= start and (flexible or (index - start) % step == 0):
            kept[index] = fit_video(frame[None], *size, fit)[0] if size is not None else frame
        if index >= last:
            break
    if hasattr(frames, "close"):
        frames.close()  # stop the decoder (ffmpeg) now, not at garbage collection
    if seen == 0:
        raise VideoError(f"{path}: no frames (a zero-length clip)")
    if seen <= last and flexible:  # the default stride shrinks to fit a short clip
        step = max(1, (seen - 1 - start) // max(1, num_frames - 1)) if seen > start else step
        last = start + (num_frames - 1) * step
    if seen <= last:
        what = f"{num_frames} frames from frame {start} at stride {step} need {last + 1}"
        raise VideoError(f"{path}: too few frames: the clip has {count or seen}; {what}")
    taken = [kept[start + k * step] for k in range(num_frames)]
    return Clip(_stack_frames(taken, path), start, step, source_fps, fit if size is not None else None)


def read_video(path: str | Path, *, max_frames: int | None = None, num_frames: int | None = None,
               size: tuple[int, int] | None = None, start: int = 0, stride: int | None = None,
               fps: float | None = None, fit: str = "crop", clip_fps: float = CLIP_FPS) -> np.ndarray:
    """Read a video file or a folder of frames as RGB uint8.

    Example:
        >>> frames = read_video("clip.gif")             # doctest: +SKIP
        >>> first8 = read_video("frames/", max_frames=8)                         # doctest: +SKIP
        >>> model = read_video("phone.mp4", num_frames=8, size=(32, 32))         # doctest: +SKIP

    Args:
        path: A ``.gif``; an ffmpeg video (``.mp4``, ``.mov``, ``.avi``,
            ``.mkv``, ``.webm``, ...); a still image (``.png``, ``.jpg``,
            ``.webp``, ``.bmp``; animated PNG/WebP give all their frames); or
            a folder of ``.png``/``.jpg``/``.jpeg`` frames, sorted by name with
            numbers compared numerically (``f2.png`` before ``f10.png``).
        max_frames: Read at most this many frames from the start (without ``num_frames``).
        num_frames: Take exactly this many frames by the rule of ``read_clip`` (window ``start``,
            ``stride`` or ``fps``, default stride spanning about 1 s as the model's clips; spatial
            ``fit`` to ``size``), decoding only what is needed.
        size, start, stride, fps, fit, clip_fps: see ``read_clip`` (with ``num_frames`` only).

    Returns:
        ``(F, H, W, 3)`` uint8. Grey images are replicated to three channels
        and alpha channels are dropped (not composited). 16-bit images are
        scaled to 8 bits.

    Raises:
        VideoError: missing path, unknown suffix, unreadable data, zero frames,
            too few frames for ``num_frames`` or frames of different sizes. The
            message is one line naming the path.
    """
    path = Path(path)
    if num_frames is not None:
        return read_clip(path, num_frames, size=size, start=start, stride=stride, fps=fps, fit=fit,
                         clip_fps=clip_fps).frames
    if max_frames is not None and max_frames < 1:
        raise VideoError(f"{path}: max_frames must be >= 1, got {max_frames}")
    frames, _, _ = _frame_sources(path)
    out = []
    for frame in frames:
        out.append(frame)
        if max_frames is not None and len(out) >= max_frames:
            break
    if hasattr(frames, "close"):
        frames.close()
    return _stack_frames(out, path)


def _one_line(err: BaseException) -> str:
    """First non-empty line of an exception message, shortened."""
    for line in str(err).splitlines():
        if line.strip():
            return f"{type(err).__name__}: {line.strip()[:200]}"
    return type(err).__name__


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------


def _check_frames(frames: np.ndarray, path: Path) -> np.ndarray:
    """Validate (F, H, W, 3) frames and return them as uint8."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or min(frames.shape[:3]) < 1:
        raise VideoError(f"{path}: frames must have shape (F, H, W, 3) with F, H, W >= 1, got {frames.shape}")
    try:
        return np.ascontiguousarray(to_uint8(frames))  # (F, H, W, 3)
    except ValueError as err:
        raise VideoError(f"{path}: {err}") from err


def _gif_delays_cs(num_frames: int, fps: float) -> list[int]:
    """Per-frame GIF delays in centiseconds whose running sum tracks k * 100 / fps."""
    ends = [round((k + 1) * 100.0 / fps) for k in range(num_frames)]
    starts = [0] + ends[:-1]
    return [max(1, end - start) for start, end in zip(starts, ends)]


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    """Position just after a GIF data sub-block chain starting at ``pos``."""
    while True:
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos


def _gif_single_frame_parts(frame: np.ndarray) -> tuple[int, bytes, bytes]:
    """Encode one (H, W, 3) uint8 frame with Pillow; return (table_bits, colour_table, lzw_data).

    ``lzw_data`` starts with the LZW minimum code size byte and includes the
    sub-block chain up to and including its terminator.
    """
    image = Image.fromarray(frame, "RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    buffer = io.BytesIO()
    image.save(buffer, format="GIF", optimize=False, interlace=False)
    data = buffer.getvalue()

    packed = data[10]
    table_bits, table = 0, b""
    pos = 13
    if packed & 0x80:  # global colour table
        table_bits = packed & 0x07
        size = 3 * (1 << (table_bits + 1))
        table = data[pos : pos + size]
        pos += size
    while pos < len(data):
        block = data[pos]
        if block == 0x21:  # extension: introducer, label, sub-blocks
            pos = _skip_sub_blocks(data, pos + 2)
        elif block == 0x2C:  # image descriptor
            image_packed = data[pos + 9]
            pos += 10
            if image_packed & 0x80:  # local colour table overrides the global one
                table_bits = image_packed & 0x07
                size = 3 * (1 << (table_bits + 1))
                table = data[pos : pos + size]
                pos += size
            if image_packed & 0x40:
                raise ValueError("unexpected interlaced GIF frame from Pillow")
            end = _skip_sub_blocks(data, pos + 1)
            if not table:
                raise ValueError("GIF frame from Pillow has no colour table")
            return table_bits, table, data[pos:end]
        else:
            break
    raise ValueError("could not parse the GIF frame written by Pillow")


def _encode_gif(frames: np.ndarray, fps: float) -> bytes:
    """(F, H, W, 3) uint8 -> animated GIF bytes, one image per frame, looping forever."""
    num_frames, height, width, _ = frames.shape
    if height > 65535 or width > 65535:
        raise ValueError("GIF frames must be at most 65535 pixels per side")
    out = bytearray(b"GIF89a")
    out += struct.pack("<HHBBB", width, height, 0x70, 0, 0)  # no global colour table
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", 0) + b"\x00"  # loop forever
    for frame, delay in zip(frames, _gif_delays_cs(num_frames, fps)):
        table_bits, table, lzw = _gif_single_frame_parts(frame)
        # graphic control extension: disposal 1 (leave in place), no transparency
        out += b"\x21\xf9\x04" + struct.pack("<BHB", 0x04, delay, 0) + b"\x00"
        # image descriptor with a local colour table
        out += b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0x80 | table_bits)
        out += table + lzw
    out += b"\x3b"
    return bytes(out)


def _pad_even(frames: np.ndarray) -> np.ndarray:
    """Replicate the last row/column so height and width are even (for yuv420p)."""
    _, height, width, _ = frames.shape
    pad_h, pad_w = height % 2, width % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frames  # (F, H', W', 3)


def _write_folder(path: Path, frames: np.ndarray) -> None:
    """Write PNG frames into a fresh temp folder, then swap it into place."""
    if path.exists() and not path.is_dir():
        raise VideoError(f"{path}: exists and is not a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    old = None
    try:
        tmp.mkdir()
        digits = max(5, len(str(len(frames) - 1)))
        for index, frame in enumerate(frames):
            file = tmp / f"{index:0{digits}d}.png"
            if not cv2.imwrite(str(file), np.ascontiguousarray(frame[:, :, ::-1])):  # RGB -> BGR
                raise VideoError(f"{path}: could not write frame {index}")
        if path.exists():  # an existing folder is replaced as a whole
            old = temp_sibling(path, ".old")
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def write_video(path: str | Path, frames: np.ndarray, *, fps: int = 8) -> Path:
    """Write frames as a GIF, an MP4 or a folder of PNG frames, atomically.

    Example:
        >>> write_video("out/clip.mp4", frames, fps=8)    # frames (F, H, W, 3)      # doctest: +SKIP
        >>> write_video("out/clip_frames", frames)       # out/clip_frames/00000.png ...  # doctest: +SKIP

    Args:
        path: ``.gif``, ``.mp4``, or a path without suffix (or an existing
            folder) for PNG frames named ``00000.png``, ``00001.png``, ...
            Parent folders are created. An existing file is overwritten; an
            existing frame folder is replaced as a whole (no stale frames).
        frames: ``(F, H, W, 3)`` uint8, or float in [0, 1] (clipped).
        fps: Frames per second (ignored for PNG folders).

    Returns:
        The written path.

    Raises:
        VideoError: bad frame shape/values, unknown suffix or encoder failure.
            Nothing is left behind at ``path`` (nor temp files) on failure.
    """
    path = Path(path)
    frames = _check_frames(frames, path)  # (F, H, W, 3) uint8
    if not fps or fps <= 0:
        raise VideoError(f"{path}: fps must be positive, got {fps}")
    suffix = path.suffix.lower()

    if suffix in (".gif", ".mp4") and path.is_dir():  # never replace a folder (and its files) by a video
        raise VideoError(f"{path}: is an existing folder; not replaced by a {suffix} file")
    as_folder = suffix == "" or path.is_dir()
    if not as_folder and suffix not in (".gif", ".mp4"):
        raise VideoError(f"{path}: unknown video suffix {path.suffix!r} (use .gif, .mp4 or a folder)")

    try:
        if as_folder:
            _write_folder(path, frames)
        elif suffix == ".gif":
            atomic_write_bytes(path, _encode_gif(frames, fps))
        else:
            with atomic_file(path, suffix=".mp4") as tmp:
                iio.imwrite(tmp, _pad_even(frames), fps=fps, codec="libx264", macro_block_size=1)
    except VideoError:
        raise
    except Exception as err:  # noqa: BLE001 - any encoder failure
        raise VideoError(f"{path}: could not write video ({_one_line(err)})") from err
    return path


# ---------------------------------------------------------------------------
# resizing
# ---------------------------------------------------------------------------


def resize_video(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize every frame with OpenCV.

    Example:
        >>> resize_video(np.zeros((4, 64, 64, 3), np.uint8), 32, 48).shape
        (4, 32, 48, 3)

    Args:
        frames: ``(F, H, W, 3)`` uint8 or float in [0, 1].
        height: Output height in pixels.
        width: Output width in pixels.

    Returns:
        ``(F, height, width, 3)`` uint8. Area interpolation when shrinking in
        both directions, bilinear otherwise.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape (F, H, W, 3), got {frames.shape}")
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"height and width must be >= 1, got {height}x{width}")
    height, width = int(height), int(width)
    frames = to_uint8(frames)  # (F, H, W, 3)
    _, in_h, in_w, _ = frames.shape
    if (in_h, in_w) == (height, width):
        return frames.copy()
    shrink = height <= in_h and width <= in_w
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = np.empty((len(frames), height, width, 3), np.uint8)  # (F, h, w, 3)
    for index, frame in enumerate(frames):
        out[index] = cv2.resize(np.ascontiguousarray(frame), (width, height), interpolation=interpolation)
    return out
