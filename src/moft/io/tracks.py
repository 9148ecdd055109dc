"""Point tracks as users author them for other tools, read into one array for point drag.

Example:
    >>> import json
    >>> from pathlib import Path
    >>> from moft.io.tracks import read_tracks, rescale
    >>> drag = [[{"x": 10, "y": 20}, {"x": 30, "y": 20}], [{"x": 50, "y": 40}]]   # ComfyUI / ATI JSON
    >>> _ = Path("drag.json").write_text(json.dumps(drag))
    >>> tracks = read_tracks("drag.json", num_frames=8, size=(64, 48))
    >>> tracks.points.shape, tracks.visible.shape, tracks.size   # (N, F, 2) pixels, (N, F) bool, (W, H)
    ((2, 8, 2), (2, 8), (64, 48))
    >>> tracks.points[1, 7].tolist()                             # one position: a still point
    [50.0, 40.0]
    >>> rescale(tracks, (128, 96)).points[0, 0].tolist()          # (10, 20) px on 64x48 -> 128x96
    [20.5, 40.5]

Formats, recognised by content (a folder is read through its ``tracks.npy`` or ``traj.npy``):

* ComfyUI / ATI JSON (``kijai/ComfyUI-WanVideoWrapper``): an array of tracks, each an array of
  ``{"x": .., "y": ..}`` pixel positions, one per frame (other keys ignored); a single track may
  come unwrapped (an array of ``{"x", "y"}`` objects).
* Wan-Move / CoTracker ``.npy``: tracks ``(1, T, N, 2)`` pixel xy, with the visibility
  ``(1, T, N)`` beside it (``visibility.npy`` in the same folder, or the tracks file's name with
  ``tracks`` replaced by ``visibility``); either file's path may be given. Without a visibility
  file every point is visible. A visibility array alone is recognised by its bool dtype.
* DragAnything JSON: ``{id: {"trajectory": [[x, y], ...], ...}, ...}`` (other keys such as
  ``mask_name`` ignored).
* SG-I2V ``traj.npy``: ``(N, 2 + F, 2)`` float, per box its top-left and bottom-right corners,
  then its centre per frame (``Kmcode1/SG-I2V`` ``inference.py``); the centres are the tracks. The
  pixels are of the ``img.png`` beside it, whose size is used when ``size`` is not given.
* moft's trajectory JSON (``moft.io.trajectory``): its point regions (``"points"`` or ``"tracks"``
  with a ``"radius"``), converted from frame fractions to pixels of ``size``; mask regions are
  skipped. A file with its own ``frames`` gives tracks of that length, then resampled to
  ``num_frames``; the radius stays in the file (``Region.radius``).

Conventions: pixels as in ``moft.io.synthetic`` (x right, y down, pixel centres at integers, so a
frame fraction ``u`` is pixel ``u * W - 0.5``). A track with a number of positions other than
``num_frames`` is resampled along a Catmull-Rom curve over the frames
(``moft.io.trajectory.resample_positions``); a resampled frame is visible when the positions on
both sides of it are. Every problem raises :class:`TracksError` with one line naming the file and
the field or array, e.g. ``tracks.npy: expected shape (1, T, N, 2) ..., got (3, 4)``.
"""

from __future__ import annotations

import io
import json
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from einops import rearrange
from PIL import Image

from .trajectory import TrajectoryError, parse_trajectory, resample_positions

__all__ = ["DEFAULT_RADIUS", "Tracks", "TracksError", "read_tracks", "rescale", "tracks_trajectory", "trajectory_tracks"]

_NPY_MAGIC = b"\x93NUMPY"
_JSON_FORMATS = ('moft trajectory (an object with "version" and "regions"), '
                 'DragAnything (an object of {"trajectory": [[x, y], ...]}), '
                 'ComfyUI / ATI (an array of tracks, each an array of {"x": .., "y": ..})')
_NPY_SHAPES = ("(1, T, N, 2) (Wan-Move / CoTracker tracks), (1, T, N) bool (their visibility) "
               "or (N, 2 + F, 2) (SG-I2V traj.npy)")


class TracksError(ValueError):
    """Malformed tracks; the message is one line naming the file and the field or array."""


def _one_line(text: object) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _fail(where: str, message: str) -> TracksError:
    return TracksError(_one_line(f"{where}: {message}"))


@dataclass(frozen=True, eq=False)
class Tracks:
    """Point tracks in pixels of a frame of ``size``.

    Example:
        >>> t = Tracks(np.zeros((3, 8, 2)), np.ones((3, 8), bool), (64, 48))
        >>> t.num_tracks, t.num_frames
        (3, 8)

    Attributes:
        points: ``(N, F, 2)`` float64 pixel positions (x right, y down, pixel centres at integers).
        visible: ``(N, F)`` bool, whether each point is visible at each frame.
        size: ``(W, H)`` of the frame the pixels are of.
    """

    points: np.ndarray  # (N, F, 2)
    visible: np.ndarray  # (N, F)
    size: tuple[int, int]

    def __post_init__(self):
        points = np.array(self.points, dtype=np.float64)
        visible = np.array(self.visible, dtype=bool)
        if points.ndim != 3 or points.shape[-1] != 2 or 0 in points.shape:
            raise _fail("Tracks.points", f"expected shape (N, F, 2) with N, F >= 1, got {points.shape}")
        if visible.shape != points.shape[:2]:
            raise _fail("Tracks.visible", f"expected shape (N, F) = {points.shape[:2]}, got {visible.shape}")
        if not np.isfinite(points).all():
            raise _fail("Tracks.points", "not finite (NaN or infinity)")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "visible", visible)
        object.__setattr__(self, "size", _size(self.size, "Tracks.size"))

    @property
    def num_tracks(self) -> int:
        return int(self.points.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.points.shape[1])


def _size(value: object, where: str) -> tuple[int, int]:
    """``(W, H)``, two positive integers."""
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in value)):
        raise _fail(where, f"expected (W, H), two positive integers, got {value!r}")
    return int(value[0]), int(value[1])


def rescale(tracks: Tracks, size: tuple[int, int]) -> Tracks:
    """Tracks drawn on a frame of ``tracks.size`` moved to the same places of a frame of ``size``.

    Example:
        >>> t = Tracks(np.array([[[0.0, 0.0], [63.0, 47.0]]]), np.ones((1, 2), bool), (64, 48))
        >>> rescale(t, (32, 24)).points.tolist()    # the corner pixels' centres stay corner centres
        [[[-0.25, -0.25], [31.25, 23.25]]]

    A pixel ``p`` of a frame ``W`` wide sits at the fraction ``(p + 0.5) / W``, so it goes to
    ``(p + 0.5) * W' / W - 0.5`` (and the same for y).

    Args:
        tracks: the tracks.
        size: ``(W', H')`` of the target frame.

    Returns:
        The rescaled ``Tracks`` (visibility unchanged).
    """
    new = _size(size, "rescale: size")
    scale = np.array(new, dtype=np.float64) / np.array(tracks.size, dtype=np.float64)  # (2,)
    return Tracks((tracks.points + 0.5) * scale - 0.5, tracks.visible.copy(), new)


# --------------------------------------------------------------------------- resampling


def _resample_visible(visible: np.ndarray, frames: int) -> np.ndarray:
    """``(K,)`` bool -> ``(F,)``: a frame is visible when the positions on both sides of it are."""
    k = len(visible)
    if k == frames:
        return visible.copy()
    u = np.linspace(0.0, k - 1.0, frames) if frames > 1 else np.zeros(1)  # (F,) in position units
    return visible[np.floor(u).astype(int)] & visible[np.ceil(u).astype(int)]


def _assemble(tracks: list[tuple[np.ndarray, np.ndarray]], frames: int, size: tuple[int, int]) -> Tracks:
    """Resample every ``(positions (K, 2), visible (K,))`` to ``frames`` and stack."""
    points = np.stack([resample_positions(p, frames) for p, _ in tracks])  # (N, F, 2)
    visible = np.stack([_resample_visible(v, frames) for _, v in tracks])  # (N, F)
    return Tracks(points, visible, size)


# --------------------------------------------------------------------------- JSON formats


def _number(value: object, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(where, f'"{key}" is not a number (got {type(value).__name__})')
    number = float(value)
    if not math.isfinite(number):
        raise _fail(where, f'"{key}" is not finite ({number})')
    return number


def _comfyui(data: list, name: str) -> list[np.ndarray]:
    """ComfyUI / ATI: an array of tracks of ``{"x", "y"}`` (or one track unwrapped) -> ``[(K, 2)]``."""
    tracks = [data] if isinstance(data[0], dict) else data
    out = []
    for i, track in enumerate(tracks):
        if not isinstance(track, list):
            raise _fail(name, f"track {i}: expected an array of {{\"x\", \"y\"}} points, got {type(track).__name__}")
        if not track:
            raise _fail(name, f"track {i}: no points")
        points = []
        for j, point in enumerate(track):
            where = f"{name}: track {i}, point {j}"
            if not isinstance(point, dict) or "x" not in point or "y" not in point:
                raise _fail(where, 'expected an object with "x" and "y"')
            points.append([_number(point["x"], where, "x"), _number(point["y"], where, "y")])
        out.append(np.array(points))
    return out


def _draganything(data: dict, name: str) -> list[np.ndarray]:
    """DragAnything: ``{id: {"trajectory": [[x, y], ...]}}`` -> ``[(K, 2)]`` in key order."""
    out = []
    for key, entry in data.items():
        label = json.dumps(key)
        if not isinstance(entry, dict) or "trajectory" not in entry:
            raise _fail(name, f'track {label}: expected an object with "trajectory"')
        trajectory = entry["trajectory"]
        if not isinstance(trajectory, list) or not trajectory:
            raise _fail(name, f'track {label}: "trajectory" must be a non-empty array of [x, y]')
        points = []
        for j, point in enumerate(trajectory):
            where = f"{name}: track {label}, point {j}"
            if not isinstance(point, list) or len(point) != 2:
                raise _fail(where, "expected [x, y]")
            points.append([_number(point[0], where, "x"), _number(point[1], where, "y")])
        out.append(np.array(points))
    return out


def _moft(data: dict, path: Path, name: str, frames: int, size: tuple[int, int] | None) -> Tracks:
    """moft's trajectory JSON: its point regions, frame fractions -> pixels of ``size``."""
    try:
        trajectory = parse_trajectory(data, default_frames=max(frames, 2), base_dir=path.parent, source=name)
    except TrajectoryError as err:
        message = str(err)
        raise TracksError(message if message.startswith(name) else f"{name}: {message}") from None
    regions = [r for r in trajectory.regions if r.tracks is not None]
    if not regions:
        raise _fail(name, 'no point regions (a region with "points" or "tracks" and a "radius")')
    if size is None:
        raise _fail(name, "size is required: moft trajectories are in frame fractions; pass size=(W, H)")
    fractions = np.concatenate([r.tracks for r in regions])  # (N, F_file, 2)
    pixels = fractions * np.array(size, dtype=np.float64) - 0.5  # (N, F_file, 2)
    return _assemble([(p, np.ones(len(p), bool)) for p in pixels], frames, size)


def _read_json(raw: bytes, path: Path, name: str, frames: int, size: tuple[int, int] | None) -> Tracks:
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise _fail(name, "neither a .npy array nor UTF-8 JSON text") from None
    except json.JSONDecodeError as exc:
        raise _fail(name, f"not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from None
    except RecursionError:
        raise _fail(name, "not valid JSON (nested too deeply)") from None
    if isinstance(data, dict) and "version" in data and "regions" in data:
        return _moft(data, path, name, frames, size)
    if isinstance(data, list) and not data:
        raise _fail(name, "empty list of tracks")
    if isinstance(data, dict) and data and any(isinstance(v, dict) and "trajectory" in v for v in data.values()):
        tracks = _draganything(data, name)
    elif isinstance(data, list) and (isinstance(data[0], (dict, list))):
        tracks = _comfyui(data, name)
    else:
        kinds = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
        shape = "an empty object" if data == {} else f"a JSON {kinds.get(type(data), 'number')}"
        raise _fail(name, f"unknown JSON shape ({shape}); tried {_JSON_FORMATS}")
    size = _required_size(size, name)
    return _assemble([(p, np.ones(len(p), bool)) for p in tracks], frames, size)


def _required_size(size: tuple[int, int] | None, name: str) -> tuple[int, int]:
    if size is None:
        raise _fail(name, "size is required: the file does not say which frame its pixels are of; pass size=(W, H)")
    return size


# --------------------------------------------------------------------------- .npy formats


def _load_npy(raw: bytes, name: str) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(raw), allow_pickle=False)
    except Exception as exc:  # ValueError for object arrays, anything for a truncated file
        raise _fail(name, f"not a readable .npy array ({type(exc).__name__}: {exc})") from None
    if array.dtype != bool and not np.issubdtype(array.dtype, np.integer) and not np.issubdtype(array.dtype, np.floating):
        raise _fail(name, f"expected a bool, integer or float array, got dtype {array.dtype}")
    return array


def _finite(array: np.ndarray, name: str, what: str) -> None:
    """Refuse NaN / infinity, naming the first bad index."""
    bad = np.argwhere(~np.isfinite(array))
    if len(bad):
        raise _fail(name, f"{what} at index {tuple(int(i) for i in bad[0])} is not finite ({array[tuple(bad[0])]})")


def _partner(path: Path, own: str, other: str) -> Path | None:
    """The file beside ``path`` holding the other array: ``own`` -> ``other`` in its name, else ``other.npy``."""
    names = ([path.name.replace(own, other)] if own in path.name else []) + [f"{other}.npy"]
    for candidate in (path.parent / n for n in names):
        if candidate != path and candidate.is_file():
            return candidate
    return None


def _cotracker(tracks_path: Path, tracks: np.ndarray, visibility_path: Path | None,
               visibility: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Wan-Move / CoTracker: tracks ``(1, T, N, 2)``, visibility ``(1, T, N)`` -> ``(N, T, 2)``, ``(N, T)``."""
    name = tracks_path.name
    if tracks.ndim != 4 or tracks.shape[0] != 1 or tracks.shape[3] != 2 or 0 in tracks.shape:
        raise _fail(name, f"expected shape (1, T, N, 2), got {tracks.shape}")
    if tracks.dtype == bool:
        raise _fail(name, "expected float pixel positions, got dtype bool")
    _finite(tracks, name, "position")
    points = rearrange(tracks.astype(np.float64), "1 t n xy -> n t xy")  # (N, T, 2)
    if visibility is None:
        return points, np.ones(points.shape[:2], bool)
    vname = visibility_path.name
    if visibility.shape != tracks.shape[:3]:
        raise _fail(vname, f"expected shape (1, T, N) = {tracks.shape[:3]} to match {name}, got {visibility.shape}")
    if visibility.dtype != bool and not np.isin(visibility, (0, 1)).all():
        raise _fail(vname, "expected bool or 0/1 values")
    return points, rearrange(visibility.astype(bool), "1 t n -> n t")


def _sgi2v(path: Path, array: np.ndarray) -> list[np.ndarray]:
    """SG-I2V ``traj.npy`` ``(N, 2 + F, 2)``: box corners, then the box centre per frame -> ``[(F, 2)]``."""
    name = path.name
    if array.ndim != 3 or array.shape[1] < 3 or array.shape[2] != 2 or array.shape[0] == 0:
        raise _fail(name, f"expected shape (N, 2 + F, 2) with F >= 1, got {array.shape}")
    _finite(array, name, "value")
    array = array.astype(np.float64)
    for i, ((x0, y0), (x1, y1)) in enumerate(array[:, :2]):
        if not (x0 <= x1 and y0 <= y1):
            raise _fail(name, f"box {i}: corners [[x0, y0], [x1, y1]] out of order, got {array[i, :2].tolist()}")
    return list(array[:, 2:])


def _image_size(path: Path) -> tuple[int, int] | None:
    """``(W, H)`` of ``img.png`` beside an SG-I2V ``traj.npy``, if there is one."""
    image = path.parent / "img.png"
    if not image.is_file():
        return None
    try:
        with Image.open(image) as img:
            return img.size
    except Exception as exc:
        raise _fail(image.name, f"cannot read the image beside {path.name} ({type(exc).__name__})") from None


def _read_npy(raw: bytes, path: Path, frames: int, size: tuple[int, int] | None) -> Tracks:
    array = _load_npy(raw, path.name)
    if array.ndim == 3 and (array.dtype == bool or (array.shape[0] == 1 and array.shape[2] != 2)):
        tracks_path = _partner(path, "visibility", "tracks")  # this is a visibility array
        if tracks_path is None:
            raise _fail(path.name, "a visibility array (1, T, N) with no tracks file beside it (tracks.npy)")
        tracks = _load_npy(_read_bytes(tracks_path), tracks_path.name)
        points, visible = _cotracker(tracks_path, tracks, path, array)
    elif array.ndim == 4:
        visibility_path = _partner(path, "tracks", "visibility")
        visibility = None if visibility_path is None else _load_npy(_read_bytes(visibility_path), visibility_path.name)
        points, visible = _cotracker(path, array, visibility_path, visibility)
    elif array.ndim == 3 and array.dtype != bool:
        centres = _sgi2v(path, array)
        size = size if size is not None else _image_size(path)
        return _assemble([(c, np.ones(len(c), bool)) for c in centres], frames, _required_size(size, path.name))
    else:
        raise _fail(path.name, f"expected shape {_NPY_SHAPES}, got {array.shape}")
    size = _required_size(size, path.name)
    return _assemble(list(zip(points, visible)), frames, size)


# --------------------------------------------------------------------------- entry point


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _fail(str(path), f"cannot read file ({exc.strerror or type(exc).__name__})") from None


def _in_folder(folder: Path) -> Path:
    """A folder stands for its ``tracks.npy`` (Wan-Move / CoTracker) or ``traj.npy`` (SG-I2V)."""
    for name in ("tracks.npy", "traj.npy"):
        if (folder / name).is_file():
            return folder / name
    raise _fail(str(folder), "a folder without tracks.npy or traj.npy")


def read_tracks(path: str | Path, *, num_frames: int, size: tuple[int, int] | None = None) -> Tracks:
    """Read point tracks in any of the formats above, resampled to ``num_frames``.

    Example:
        >>> xy = np.stack(np.broadcast_arrays(np.arange(8.0)[:, None] * [2, 4, 6], 12.0), -1)  # (T, N, 2)
        >>> np.save("tracks.npy", xy[None].astype(np.float32))   # Wan-Move / CoTracker (1, T, N, 2)
        >>> np.save("visibility.npy", np.arange(8)[None, :, None] < [8, 8, 6])  # (1, T, N); track 2 leaves at 6
        >>> t = read_tracks("visibility.npy", num_frames=8, size=(64, 48))    # either file finds the other
        >>> t.points.shape, t.points[2, 7].tolist(), t.visible.sum(axis=1).tolist()
        ((3, 8, 2), [42.0, 12.0], [8, 8, 6])
        >>> read_tracks("examples/points_drag.json", num_frames=16, size=(64, 48)).points.shape  # point regions
        (3, 16, 2)

    Args:
        path: a file (recognised by its content, not its name) or a folder holding ``tracks.npy``
            or ``traj.npy``.
        num_frames: frames ``F`` of the video the tracks are for (``>= 1``).
        size: ``(W, H)`` of the frame the file's pixels are of (for moft's trajectory JSON, the
            frame whose pixels its fractions become). Required unless the format gives it (SG-I2V's
            ``img.png``); ``rescale`` moves the tracks to another frame size.

    Returns:
        ``Tracks`` with ``points`` ``(N, F, 2)``, ``visible`` ``(N, F)`` and ``size``.

    Raises:
        TracksError: on any problem, one line naming the file and the field or array.
    """
    if isinstance(num_frames, bool) or not isinstance(num_frames, numbers.Integral) or num_frames < 1:
        raise _fail("read_tracks", f"num_frames must be a positive integer, got {num_frames!r}")
    size = None if size is None else _size(size, "read_tracks: size")
    path = Path(path)
    if path.is_dir():
        path = _in_folder(path)
    raw = _read_bytes(path)
    if raw.startswith(_NPY_MAGIC):
        return _read_npy(raw, path, int(num_frames), size)
    return _read_json(raw, path, path.name, int(num_frames), size)


# --------------------------------------------------------------------------- tracks <-> trajectories

DEFAULT_RADIUS = 0.1  # a point region's radius (fraction of the shorter side) for tracks that give none


def tracks_trajectory(tracks: Tracks, radius: float = DEFAULT_RADIUS):
    """A moft trajectory with one point region per track (what a drag target moves along each path).

    Example:
        >>> t = Tracks(np.array([[[3.5, 7.5], [11.5, 7.5]], [[40.0, 8.0], [90.0, 8.0]]]), np.ones((2, 2), bool), (64, 16))
        >>> traj = tracks_trajectory(t)
        >>> traj.frames, len(traj.regions), traj.regions[0].tracks[:, :, 0].tolist()  # pixel 3.5 of 64 = 1/16
        (2, 2, [[0.0625, 0.1875]])
        >>> traj.regions[1].tracks[0, 1].tolist()              # a track that leaves the frame is held at its edge
        [1.0, 0.53125]

    Positions become frame fractions ``(p + 0.5) / W`` clipped to ``[0, 1]`` (the point loss reads
    the unclipped tracks and skips points off the frame).

    Args:
        tracks: the tracks.
        radius: each region's radius, a fraction of the shorter side.
    """
    frac = np.clip((tracks.points + 0.5) / np.array(tracks.size, dtype=np.float64), 0.0, 1.0)  # (N, F, 2)
    regions = [{"tracks": [track.tolist()], "radius": float(radius)} for track in frac]
    return parse_trajectory({"version": 1, "frames": tracks.num_frames, "regions": regions},
                            default_frames=tracks.num_frames, source="tracks")


def trajectory_tracks(trajectory, size: tuple[int, int]) -> Tracks | None:
    """The tracks of a trajectory's point regions in pixels of a ``size`` frame (None without any).

    Example:
        >>> from moft.io.trajectory import load_trajectory
        >>> t = trajectory_tracks(load_trajectory("examples/points_drag.json", default_frames=8), (32, 32))
        >>> t.points.shape, t.size
        ((3, 8, 2), (32, 32))
    """
    found = [r.tracks for r in trajectory.regions if r.tracks is not None]  # [(n, F, 2)] fractions
    if not found:
        return None
    frac = np.concatenate(found)  # (N, F, 2)
    size = _size(size, "trajectory_tracks: size")
    return Tracks(frac * np.array(size, dtype=np.float64) - 0.5, np.ones(frac.shape[:2], bool), size)
