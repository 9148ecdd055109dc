"""Reading the image an image-to-video model animates.

Example:
    >>> import numpy as np, tempfile, os
    >>> from PIL import Image
    >>> path = os.path.join(tempfile.mkdtemp(), "still.png")
    >>> Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(path)
    >>> read_image(path).shape                      # (H, W, 3) uint8
    (48, 64, 3)

PNG, JPEG and WebP (and BMP) of any size and mode (grey, palette, alpha: the alpha is dropped); the first
frame of an animated file. The model's frame is made from it by the clip fit rule
(``moft.models.image.fit_image``: crop, resize or pad).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_FORMATS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MIN_SIDE = 2  # px: an image this small carries nothing to animate


class ImageError(ValueError):
    """An image that cannot be read or used; the message names the path (one line)."""


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to ``(H, W, 3)`` uint8 RGB.

    Raises:
        ImageError: missing, not an image, corrupt, or smaller than 2x2 pixels.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    if path.suffix.lower() not in IMAGE_FORMATS:
        raise ImageError(f"{path}: not an image file (PNG, JPEG, WebP or BMP)")
    try:
        with Image.open(path) as image:
            image.load()
            rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ImageError(f"{path}: unreadable image ({reason})") from None
    if min(rgb.shape[:2]) < MIN_SIDE:
        raise ImageError(f"{path}: {rgb.shape[1]}x{rgb.shape[0]} pixels is too small to animate")
    return np.ascontiguousarray(rgb)
