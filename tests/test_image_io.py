"""moft.io.image: every image a user may hand over is read as (H, W, 3) uint8, or refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from moft.io.image import ImageError, read_image


@pytest.mark.parametrize("suffix,mode", [(".png", "RGB"), (".png", "RGBA"), (".png", "L"), (".png", "P"),
                                         (".jpg", "RGB"), (".webp", "RGB")])
def test_each_format_and_mode_reads_as_rgb(tmp_path, suffix, mode):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[5:15, 10:20] = (200, 40, 40)
    path = tmp_path / f"im{suffix}"
    options = {".webp": {"lossless": True}, ".jpg": {"quality": 95, "subsampling": 0}}.get(suffix, {})
    Image.fromarray(rgb).convert(mode).save(path, **options)
    out = read_image(path)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    expected = np.asarray(Image.fromarray(rgb).convert(mode).convert("RGB"))
    error = np.abs(out.astype(int) - expected.astype(int))
    if suffix == ".jpg":  # lossy: the square's colour stays near inside, the edges ring
        assert error[8:12, 13:17].max() <= 12 and error.mean() < 4
    else:
        assert error.max() == 0


def test_missing_corrupt_tiny_and_non_image_files_are_refused_in_one_line(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG not really")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "dot.png")
    (tmp_path / "notes.txt").write_text("hello")
    for name, message in [("gone.png", "no such image"), ("bad.png", "unreadable image"), ("dot.png", "too small"),
                          ("notes.txt", "not an image")]:
        with pytest.raises(ImageError, match=message) as err:
            read_image(tmp_path / name)
        assert "\n" not in str(err.value) and name in str(err.value)
