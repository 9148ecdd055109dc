"""Plot motion-channel values over frames for pans (paper Fig. 3 analogue) and print the fit quality.

Usage:
    python scripts/channel_curves.py --out docs/channel_curves.png [--model M]

For left/right/up/down pans, and right-then-left / down-then-up reversals, of random still scenes,
DDIM-invert each video to t ~ 200, take the centre-crop mean of the content-correlation-removed
feature, and plot the top horizontal and vertical motion channels over frames. Prints, per channel,
the R^2 of the position model the target synthesis uses (value ~ a * (x_f - mean x) + b * (y_f - mean y)).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from moft.method.channels import default_video_size  # noqa: E402
from moft.front.extract import nearest_step  # noqa: E402
from moft.method.features import remove_content_correlation, resize  # noqa: E402
from moft.method.inversion import reference_features  # noqa: E402
from moft.method.channels import default_channels  # noqa: E402
from moft.models.loading import load_pipeline  # noqa: E402
from moft.io.synthetic import DIRECTIONS, background_texture, render  # noqa: E402


def pan(seed: int, steps: list[tuple[float, float]], size: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """A pan whose content moves by ``steps[f]`` px between frames; returns (frames uint8, positions (F, 2))."""
    bg = background_texture(np.random.default_rng(seed))
    pos = np.concatenate([[np.zeros(2)], np.cumsum(np.asarray(steps[: frames - 1]), axis=0)])  # (F, 2)
    video = render(bg, [], -pos, size)
    return (video * 255).round().astype(np.uint8), pos


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", type=Path, default=Path("docs/channel_curves.png"))
    ap.add_argument("--scenes", type=int, default=3)
    ap.add_argument("--speed", type=float, default=1.5, help="px per frame at 32 px")
    args = ap.parse_args()
    pipe = load_pipeline(args.model)
    ch = default_channels(args.model)
    f, h, w = default_video_size(pipe)
    index, t = nearest_step(pipe, 25, 200, ascending=True)
    s = args.speed * h / 32
    half = f // 2
    kinds = {
        "right": [DIRECTIONS["right"]] * f, "left": [DIRECTIONS["left"]] * f,
        "down": [DIRECTIONS["down"]] * f, "up": [DIRECTIONS["up"]] * f,
        "right then left": [DIRECTIONS["right"]] * half + [DIRECTIONS["left"]] * f,
        "down then up": [DIRECTIONS["down"]] * half + [DIRECTIONS["up"]] * f,
    }
    curves, positions = {}, {}
    for name, dirs in kinds.items():
        rows = []
        for sc in range(args.scenes):
            video, pos = pan(100 + sc, [np.asarray(d) * s for d in dirs], h, f)
            ref = reference_features(pipe, video, timestep=200, num_steps=25)
            x = remove_content_correlation(resize(ref.features.float(), ref.latents.shape[-2:]))[0]
            hh, ww = x.shape[-2:]
            rows.append(x[:, :, hh // 4: 3 * hh // 4, ww // 4: 3 * ww // 4].mean(dim=(-2, -1)))  # (F, C)
        curves[name] = torch.stack(rows).mean(0)  # (F, C)
        positions[name] = (pos - pos.mean(0)) / np.array([w, h])
    horizontal, vertical = ch.horizontal.tolist(), ch.vertical.tolist()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(12, 6), sharex=True)
    for ax, (name, c) in zip(axes.flat, curves.items()):
        for k in horizontal[:2]:
            ax.plot(c[:, k].numpy(), "-o", ms=3, label=f"h-ch {k}")
        for k in vertical[:2]:
            ax.plot(c[:, k].numpy(), "--s", ms=3, label=f"v-ch {k}")
        ax.set_title(f"pan {name}")
        ax.axhline(0, color="grey", lw=0.5)
    axes[0, 0].legend(fontsize=7)
    for ax in axes[1]:
        ax.set_xlabel("frame")
    fig.suptitle(f"motion-channel values over frames (CR, centre mean, inverted to t={t})")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    y = torch.cat([curves[k] for k in kinds])
    xd = torch.from_numpy(np.concatenate([positions[k] for k in kinds])).float()
    sol = torch.linalg.lstsq(xd, y).solution
    r2 = 1 - ((y - xd @ sol) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)
    report = {"timestep": t, "horizontal": horizontal, "vertical": vertical,
              "position_model_r2": {str(k): float(r2[k]) for k in sorted(set(horizontal + vertical))},
              "median_r2_all_channels": float(r2.median())}
    print(json.dumps(report, indent=2))
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
