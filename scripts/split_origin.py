"""Where a point drag's splits come from: the drag proxy, the VAE's round trip of it, or the model's denoising.

Usage:
    OMP_NUM_THREADS=1 python scripts/split_origin.py --model moft-tiny-wan --suite benchmarks/point_drag_fresh.json \
        --out docs/results/moft-tiny-wan/split_origin_fresh

For each request of a point-drag suite (``benchmarks/point_drag.json``'s format) the script makes the unguided
source and the point request exactly as ``scripts/point_drag.py`` does, runs one row (``--setting``; default: the
model's track default, what ``moft control TRACKS`` runs) and counts the prompt's object's pieces
(``moft.eval.metrics.object_pieces``, the split metric's own count, most over the frames) in four videos of the
same noise: the source, the drag proxy the row starts from (the source's frame 0 with the object under the point
cut and dragged, ``moft.method.drag.drag_video``), the proxy encoded and decoded by the model's VAE (what any
latent start made from the proxy can at best reproduce), and the guided result. A video is split when it has more
pieces than the source (``moft.eval.metrics.split``). A split result is attributed to the first stage that split:
the proxy, else the round trip, else the model (the proxy and its round trip were whole). A cut-and-drag start
(``method="cut-drag"``) can do no better than its proxy's round trip inside the dragged region; splits of the
first two kinds are not the sampler's to fix.

Writes OUT.json (per-request counts, the tallies) and OUT.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from point_drag import default_row, point_request, setting_guidance, suite_source, _schedule

import moft
from moft.eval.metrics import object_pieces
from moft.eval.objects import prompt_color
from moft.eval.point_drag import load_point_suite
from moft.front.control import control
from moft.io.synthetic import COLORS
from moft.io.tracks import Tracks
from moft.models.latents import decode_latents, encode_video
from moft.models.pipeline import pipeline_record

STAGES = ("proxy", "round trip", "result")


def round_trip(pipe, frames: np.ndarray) -> np.ndarray:
    """``(F, H, W, 3)`` in [0, 1] through the pipeline's VAE and back (posterior mean; the video VAEs at once)."""
    z = encode_video(pipe, (np.asarray(frames) * 255).round().clip(0, 255).astype(np.uint8))  # (1, F', C, h, w)
    return decode_latents(pipe, z)[0]  # (F, H, W, 3)


def origin(pieces: dict) -> str | None:
    """The first stage whose video has more pieces than the source, when the result does; else None.

    Example:
        >>> origin({"source": 1, "proxy": 1, "round trip": 2, "result": 2})
        'round trip'
        >>> origin({"source": 1, "proxy": 2, "round trip": 2, "result": 1}) is None   # the model mended it
        True
    """
    if pieces["result"] <= pieces["source"]:
        return None
    return next(stage for stage in STAGES if pieces[stage] > pieces["source"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="benchmarks/point_drag.json")
    ap.add_argument("--model", default="moft-tiny-wan")
    ap.add_argument("--setting", default=None, help="the suite row to run (default: the model's track default)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    suite = load_point_suite(args.suite)
    torch.set_num_threads(1)
    pipe = moft.load_pipeline(args.model)
    channels, record = moft.default_channels(args.model), pipeline_record(pipe)
    steps, cfg = _schedule(suite)
    name = args.setting or default_row(suite, record, steps)
    setting = next((s for s in suite["settings"] if s["name"] == name), None)
    if setting is None:
        raise SystemExit(f"error: {args.suite} has no row {name!r}")
    g = setting_guidance(suite, setting, record)
    groups = [(p, s, r) for (s, r), p in zip(itertools.product(suite["seeds"], suite["requests"]),
                                             itertools.cycle(suite["prompts"]))]
    start, rows = time.perf_counter(), []
    for prompt, seed, req in groups:
        src, _, image = suite_source(pipe, suite, prompt, seed)
        request = point_request(src, image, prompt, req)
        if "status" in request:
            continue
        path = np.asarray(request["path"])  # (F, 2) px
        f, h, w = src.frames.shape[:3]
        res = control(pipe, Tracks(path[None], np.ones((1, f), bool), (w, h)), prompt=prompt, channels=channels,
                      seed=seed, steps=steps, guidance_scale=cfg, guidance=g, init_latents=src.initial_latents,
                      image=image)
        if res.proxy_frames is None:
            raise SystemExit(f"error: row {name!r} makes no drag proxy")
        color = COLORS[prompt_color(prompt)]
        videos = {"source": src.frames, "proxy": res.proxy_frames, "round trip": round_trip(pipe, res.proxy_frames),
                  "result": res.frames}
        pieces = {k: int(object_pieces(v, color).max()) for k, v in videos.items()}
        rows.append({"prompt": prompt, "seed": seed, "request": req["name"], "pieces": pieces,
                     "origin": origin(pieces)})
        print(f"{len(rows)}/{len(groups)} {prompt} {seed} {req['name']}: {pieces} {rows[-1]['origin']}", flush=True)
    tally = {stage: sum(r["origin"] == stage for r in rows) for stage in STAGES}
    split_at = {stage: sum(r["pieces"][stage] > r["pieces"]["source"] for r in rows) for stage in STAGES}
    report = {"suite": args.suite, "model": args.model, "setting": name, "requests": len(rows),
              "minutes": round((time.perf_counter() - start) / 60, 1), "threads": 1,
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "split": split_at, "result_split_from": tally,
              "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    n = max(len(rows), 1)
    lines = [f"# Where the splits come from: {args.model}, {args.suite}", "",
             f"Row: {name}. {len(rows)} requests, {report['minutes']} min (1 thread). Written by "
             f"`scripts/split_origin.py` (its docstring defines the stages).", "",
             "| stage | videos split (more pieces than the source) | split results first split here |",
             "|---|---|---|"]
    lines += [f"| {stage} | {split_at[stage]} ({split_at[stage] / n:.0%}) | {tally[stage]} |" for stage in STAGES]
    lines += ["", "A split result first split at the result stage is the model's doing: its proxy and the proxy's "
                  "round trip were whole."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
