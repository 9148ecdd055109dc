"""Render ``examples/red_disk.png``, the picture the README animates with the image-to-video organism.

A red disk on a smooth synthetic background (``moft.io.synthetic``, the organisms' training scenes), placed under
the region of ``examples/image_right.json`` (a circle at x 0.37, y 0.51 of the frame), at the organism's 32x32.

Usage:
    python scripts/make_example_image.py            # writes examples/red_disk.png
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from moft.io.synthetic import COLORS, background_texture, render

ROOT = Path(__file__).resolve().parents[1]
SIZE, RADIUS, CENTRE = 32, 4.5, (0.37, 0.51)  # px, px, fraction of the frame (the trajectory's circle)


def main(out: Path = ROOT / "examples" / "red_disk.png") -> None:
    centre = np.array([[CENTRE[0] * SIZE - 0.5, CENTRE[1] * SIZE - 0.5]])  # (1, 2) px, pixel centres at integers
    frame = render(background_texture(np.random.default_rng(0)), [("disk", COLORS["red"], RADIUS, centre)],
                   np.zeros((1, 2)), SIZE)[0]  # (H, W, 3) in [0, 1]
    Image.fromarray((frame * 255).round().astype(np.uint8)).save(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
