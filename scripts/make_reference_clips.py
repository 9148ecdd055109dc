"""Write the reference clips of benchmarks/general_metrics.json (motion transfer on the shipped model).

    python scripts/make_reference_clips.py          # -> benchmarks/clips/{pan_left,disk_right}.gif

Both are 16 frames of 64x64 (larger and longer than the shipped model's 8x32x32, so a suite run
also exercises fitting a clip to the model), rendered analytically by ``moft.io.synthetic.render``:

* ``pan_left.gif``: a still scene (textured ground, a green square) under a camera moving right,
  so the content moves left 3 px/frame (1.5 px/frame at 32 px);
* ``disk_right.gif``: a red disk starting at (0.42, 0.38) of the frame, where the shipped model
  draws its disk for seed 0, moving right 3 px/frame over a still textured ground.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from moft.io.synthetic import COLORS, render  # noqa: E402
from moft.io.video import write_video  # noqa: E402

SIZE, FRAMES, SPEED = 64, 16, 3.0


def ground(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A smooth, trackable texture: (..., 3) RGB in [0.2, 0.6]."""
    waves = np.sin(2 * np.pi * (x / 23.0 + y / 37.0)) + np.sin(2 * np.pi * (x / 11.0 - y / 17.0)) * 0.7
    waves = waves + np.sin(2 * np.pi * (y / 9.0 + x / 29.0)) * 0.5
    return 0.4 + 0.09 * waves[..., None] * np.array([1.0, 0.8, 0.6])


def main(out: Path = Path(__file__).resolve().parents[1] / "benchmarks" / "clips") -> None:
    out.mkdir(parents=True, exist_ok=True)
    t = np.arange(FRAMES, dtype=np.float64)[:, None]  # (F, 1)
    still = lambda xy: np.repeat(np.asarray(xy, np.float64)[None], FRAMES, axis=0)  # noqa: E731
    camera = np.hstack([SPEED * t, 0 * t])  # (F, 2): the view moves right, the content left
    pan = render(ground, [("square", COLORS["green"], 7.0, still((40.0, 30.0)))], camera, SIZE)
    write_video(out / "pan_left.gif", pan)
    start = np.array([0.42, 0.38]) * SIZE - 0.5
    disk = render(ground, [("disk", COLORS["red"], 10.0, start + np.hstack([SPEED * t, 0 * t]))], 0 * camera, SIZE)
    write_video(out / "disk_right.gif", disk)
    print(f"wrote {out / 'pan_left.gif'} and {out / 'disk_right.gif'}")


if __name__ == "__main__":
    main()
