"""Names the docstring examples use, for ``python -m pytest --doctest-modules src/moft``.

The examples read like user code: ``pipe`` is a tiny randomly initialised AnimateDiff (the shape of
the shipped model, built offline in about a second), ``channels`` its motion channels, ``frames``
an 8-frame 32x32 pan, ``traj`` a one-region trajectory, and so on. Everything is built once, on the
first doctest that runs, and never for the ordinary tests. Each example runs in a scratch working
folder (with the repo's ``examples/`` and ``benchmarks/`` linked in), so files it writes go nowhere. Examples that need
a big model are marked ``# doctest: +SKIP``.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent


@functools.cache
def _names() -> dict:
    import numpy as np
    import torch

    import moft
    from moft.models.adapters import call_denoiser
    from moft.method.channels import fit_channels, pan_videos
    from moft.models.latents import encode_prompt, encode_video
    from moft.models.tiny import build_tiny_animatediff
    from moft.method.sampler import sample
    from moft.io.trajectory import load_trajectory, parse_trajectory

    torch.set_num_threads(1)
    pipe = build_tiny_animatediff(seed=0)
    pipe.set_progress_bar_config(disable=True)
    frames, _, _ = next(pan_videos(size=(32, 32), num_frames=8, speed=0.04, scenes=1, seed=0))  # (F, H, W, 3)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(1, 8, 4, 16, 16, generator=g)  # (B, F, C, h, w) latents of the tiny model
    cond = {"encoder_hidden_states": encode_prompt(pipe, "a red disk moving left")}
    uncond = {"encoder_hidden_states": encode_prompt(pipe, "")}
    return {
        "np": np, "torch": torch, "moft": moft, "pipe": pipe, "frames": frames, "z": z, "t": 500,
        "cond": cond, "uncond": uncond,
        "cfg_cond": {"encoder_hidden_states": torch.cat([uncond["encoder_hidden_states"],
                                                        cond["encoder_hidden_states"]])},
        "z_source": z, "z_guided": z.flip(1).contiguous(),
        "call_denoiser": call_denoiser, "encode_video": encode_video,
        "channels": fit_channels(pipe, method="noise", scenes=1, seed=0),
        "traj": load_trajectory(ROOT / "examples" / "object_left.json", default_frames=8),
        "load_trajectory": load_trajectory, "parse_trajectory": parse_trajectory, "sample": sample,
    }


@pytest.fixture(autouse=True)
def _docstring_example_names(request):
    """Fill ``doctest_namespace`` for docstring examples only (ordinary tests never build these)."""
    from _pytest.doctest import DoctestItem

    if isinstance(request.node, DoctestItem):
        request.getfixturevalue("doctest_namespace").update(_names())
        # files the examples write land in a scratch folder that also holds the repo's examples/
        tmp = request.getfixturevalue("tmp_path")
        for linked in ("examples", "benchmarks"):
            (tmp / linked).symlink_to(ROOT / linked)
        request.getfixturevalue("monkeypatch").chdir(tmp)
