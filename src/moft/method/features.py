"""MOFT: content-correlation removal, motion-channel selection and spatial resampling.

Example:
    >>> import torch
    >>> from moft.method.features import moft, remove_content_correlation
    >>> x = torch.randn(1, 8, 64, 16, 16)                 # (B, F, C, H, W) captured features
    >>> m = moft(x, channels=torch.tensor([3, 7, 11]), size=(32, 32))
    >>> m.shape                                           # (B, F, d, H', W')
    torch.Size([1, 8, 3, 32, 32])
    >>> bool(remove_content_correlation(x).mean(dim=1).abs().max() < 1e-5)
    True

Paper Eq. 1-2: ``M = X[C] - mean_f X[C]``; no standard-deviation division. The official code
resizes the feature bilinearly to the latent grid (64x64 for 512x512) before anything else.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange


def remove_content_correlation(x: torch.Tensor) -> torch.Tensor:
    """Subtract each position's and channel's mean over frames (paper Eq. 1).

    Args:
        x: ``(B, F, C, H, W)`` features.

    Returns:
        ``(B, F, C, H, W)`` with zero mean over ``F``.
    """
    return x - x.mean(dim=1, keepdim=True)


def select_channels(x: torch.Tensor, channels: torch.Tensor | None) -> torch.Tensor:
    """Keep motion channels: ``(B, F, C, H, W) -> (B, F, d, H, W)``; ``None`` keeps all."""
    if channels is None:
        return x
    return x.index_select(2, torch.as_tensor(channels, device=x.device, dtype=torch.long))


def resize(x: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """Bilinear resize of every frame: ``(B, F, C, H, W) -> (B, F, C, *size)``; ``None`` is a no-op."""
    if size is None or tuple(x.shape[-2:]) == tuple(size):
        return x
    b = x.shape[0]
    y = F.interpolate(rearrange(x, "b f c h w -> (b f) c h w"), size=tuple(size), mode="bilinear",
                      align_corners=False)
    return rearrange(y, "(b f) c h w -> b f c h w", b=b)


def moft(x: torch.Tensor, channels: torch.Tensor | None = None, size: tuple[int, int] | None = None,
         content_removal: bool = True) -> torch.Tensor:
    """The motion feature: resize, remove content correlation, keep motion channels.

    Args:
        x: ``(B, F, C, H, W)`` captured features.
        channels: motion-channel indices ``(d,)``; ``None`` keeps all channels.
        size: working resolution ``(H', W')``; ``None`` keeps the captured one.
        content_removal: subtract the frame mean (``False`` gives the paper's "vanilla" feature).

    Returns:
        ``(B, F, d, H', W')``.
    """
    x = resize(x, size)
    if content_removal:
        x = remove_content_correlation(x)
    return select_channels(x, channels)


def region_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average features over a spatial region: ``(B, F, d, H, W)``, mask ``(H, W)`` -> ``(B, F, d)``."""
    w = mask.to(x.dtype)
    return (x * w).sum(dim=(-2, -1)) / w.sum().clamp_min(1e-8)


def cosine_map(x: torch.Tensor, point: tuple[int, int], frame: int = 0) -> torch.Tensor:
    """The paper's motion-correspondence heatmap: cosine similarity of one point's MOFT to every
    position of every frame.

    Args:
        x: ``(F, d, H, W)`` MOFT of one video.
        point: ``(row, col)`` on the feature grid.
        frame: frame of the source point.

    Returns:
        ``(F, H, W)`` similarities in [-1, 1].
    """
    src = x[frame, :, point[0], point[1]]  # (d,)
    return F.cosine_similarity(x, src[None, :, None, None], dim=1)
