"""Run the point-drag suite (paper Table 2's Mean Distance) and write its report.

Usage:
    OMP_NUM_THREADS=1 python scripts/point_drag.py --minutes 25          # moft-tiny, as many groups as fit
    python scripts/point_drag.py --model moft-tiny-wan --out docs/results/point_drag_wan
    python scripts/point_drag.py --settings "cut-drag*" --minutes 30      # only these rows (fnmatch patterns)
    python scripts/point_drag.py --model moft-tiny-wan-i2v --out docs/results/moft-tiny-wan-i2v/point_drag
    (an image-to-video model animates the image the suites make, ``moft.eval.objects.suite_image``, and the
    point is the object's centre on that image, as ``moft control TRACKS --image`` takes it)

Groups (prompt, seed, request) run in the suite's order (directions interleaved over seeds); each
makes the unguided source and every setting's guided video from the same noise
(``moft.eval.point_drag``). A new group starts only while ``--minutes`` allow. Every row is kept in
``--work-dir`` (default OUT.parts/), one file per (prompt, seed, request, setting) keyed by the group's
point request too (its own file, under ``POINT_PROTOCOL``: a new protocol reruns only the groups whose
point it moves): a rerun skips what is there, so the suite can be run in pieces (the cheap rows for every
request, the costly ones as time allows); the report counts the requests each row has. Writes OUT.json (rows, summary, settings,
timing) and OUT.md.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import itertools
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

import moft
from moft.eval.point_drag import (POINT_PROTOCOL, load_point_suite, markdown_table, mean_distance, outside_mask,
                                  point_request_of, summarise)
from moft.eval.metrics import split, ssim
from moft.front.control import control, default_guidance, plan_settings
from moft.io.synthetic import COLORS
from moft.io.tracks import Tracks
from moft.eval.objects import prompt_color, suite_image
from moft.method.drag import SEGMENT_TOLERANCES
from moft.method.sampler import GuidanceConfig, sample
from moft.models.image import requires_image, still_frames
from moft.models.pipeline import default_video_size, pipeline_record


def _schedule(suite: dict) -> tuple[int, float]:
    """The suite's sampling steps and CFG scale (25 and 4 unless it says)."""
    return suite.get("steps", 25), suite.get("guidance_scale", 4.0)


def _key_file(work: Path, *key) -> Path:
    return work / (hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16] + ".json")


def _request_file(work: Path, model: str, suite: dict, prompt: str, seed: int, req: dict) -> Path:
    """Where a group's point request is kept (``{"path", "box"}``, or ``{"status"}`` without the object)."""
    return _key_file(work, "request", POINT_PROTOCOL, model, *_schedule(suite), prompt, seed, req)


def _row_file(work: Path, model: str, suite: dict, prompt: str, seed: int, req: dict, setting: dict,
              request: dict, record) -> Path:
    """Where one row is kept: keyed by everything it is made from, the point request included, and for a row
    that drags the object's segment the segmentation's tolerances (``SEGMENT_TOLERANCES``)."""
    segment = setting["name"] != "unguided" and setting_guidance(suite, setting, record).point_region == "segment"
    rule = [("segment", SEGMENT_TOLERANCES)] if segment else []  # other rows keep the keys they had
    return _key_file(work, model, *_schedule(suite), suite.get("guidance", {}), prompt, seed, req, setting, request,
                     *rule)


def setting_guidance(suite: dict, setting: dict, record) -> GuidanceConfig:
    """A row's guidance: the model's ``moft.json``, then the suite's ``guidance``, then the row's fields."""
    fields = {k: v for k, v in setting.items() if k in GuidanceConfig.__dataclass_fields__}
    return default_guidance(record=record, **dict(suite.get("guidance", {}), **fields))


def default_row(suite: dict, record, steps: int) -> str | None:
    """The row that is what ``moft control TRACKS`` runs on this model when no guidance is given (tracks get
    ``track_settings`` over the model's ``moft.json``), or None when no row is."""
    shipped = plan_settings(record, steps=steps, tracks=True).guidance
    return next((s["name"] for s in suite["settings"] if setting_guidance(suite, s, record) == shipped), None)


def suite_source(pipe, suite: dict, prompt: str, seed: int):
    """The group's unguided source (``SampleResult``), its seconds, and the image an image-to-video model
    animates (the suites' image, ``suite_image``; else None)."""
    image = None
    if requires_image(pipe):
        _, h, w = default_video_size(pipe)
        image = suite_image(prompt, seed, h, w)[0]  # (H, W, 3) uint8
    steps, cfg = _schedule(suite)
    start = time.perf_counter()
    src = sample(pipe, prompt, seed=seed, steps=steps, guidance_scale=cfg, image=image)
    return src, time.perf_counter() - start, image


def point_request(src, image, prompt: str, req: dict) -> dict:
    """A group's request as JSON: the requested path and the object's box (rounded, so it keys the rows),
    or the status when the source has no object of the prompt's colour. On an image-to-video model the point
    is on the image."""
    made = point_request_of(src.frames if image is None else still_frames(image, len(src.frames)), prompt, req)
    if made is None:
        return {"status": f"no {prompt_color(prompt)} object in source"}
    path, box = made
    return {"path": np.round(path, 4).tolist(), "box": [round(float(v), 6) for v in box]}


def run_group(pipe, suite: dict, prompt: str, seed: int, req: dict, channels, record, settings: list[dict],
              work: Path, model: str) -> list[dict]:
    """Every row of one (prompt, seed, request) not yet in ``work``: the unguided source, then each setting."""
    source = None
    request_file = _request_file(work, model, suite, prompt, seed, req)
    if request_file.exists():
        request = json.loads(request_file.read_text())
    else:
        source = suite_source(pipe, suite, prompt, seed)
        request = point_request(source[0], source[2], prompt, req)
        request_file.write_text(json.dumps(request) + "\n")
    files = {s["name"]: _row_file(work, model, suite, prompt, seed, req, s, request, record)
             for s in [{"name": "unguided"}] + settings}
    base = {"prompt": prompt, "seed": seed, "request": req["name"]}
    if "status" in request:
        row = dict(base, setting="unguided", status=request["status"])
        files["unguided"].write_text(json.dumps(row) + "\n")
        return [row]
    if all(f.exists() for f in files.values()):
        return [json.loads(f.read_text()) for f in files.values()]
    src, src_seconds, image = source or suite_source(pipe, suite, prompt, seed)
    steps, cfg = _schedule(suite)
    path, box = np.asarray(request["path"]), request["box"]
    f, h, w = src.frames.shape[:3]
    tracks = Tracks(path[None], np.ones((1, f), bool), (w, h))
    color = COLORS[prompt_color(prompt)]
    outside = outside_mask(box, path, (f, h, w))
    rows = []
    for setting in [{"name": "unguided"}] + settings:
        if files[setting["name"]].exists():
            rows.append(json.loads(files[setting["name"]].read_text()))
            continue
        if setting["name"] == "unguided":
            frames, seconds = src.frames, src_seconds
        else:
            g = setting_guidance(suite, setting, record)
            start = time.perf_counter()
            res = control(pipe, tracks, prompt=prompt, channels=channels, seed=seed, steps=steps, guidance_scale=cfg,
                          guidance=g, init_latents=src.initial_latents, target_kind=setting.get("target", "drag"),
                          image=image)
            frames, seconds = res.frames, time.perf_counter() - start
        md, kept = mean_distance(frames, path), float(ssim(frames, src.frames, outside))  # NaN: no background left
        row = dict(base, setting=setting["name"], status="ok", mean_distance=None if math.isnan(md) else md,
                   ssim_outside=None if math.isnan(kept) else kept,
                   split=float(split(frames, src.frames, color)), seconds=seconds, cost=seconds / src_seconds)
        files[setting["name"]].write_text(json.dumps(row) + "\n")
        rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="benchmarks/point_drag.json")
    ap.add_argument("--model", default=None)
    ap.add_argument("--minutes", type=float, default=25.0)
    ap.add_argument("--out", default="docs/results/point_drag")
    ap.add_argument("--work-dir", default=None, help="one file per row (default: OUT.parts/); reruns skip them")
    ap.add_argument("--settings", nargs="*", default=["*"], help="run only the settings matching these patterns")
    args = ap.parse_args()
    suite = load_point_suite(args.suite)
    settings = [s for s in suite["settings"] if any(fnmatch.fnmatch(s["name"], p) for p in args.settings)]
    torch.set_num_threads(1)
    model = args.model or "moft-tiny"
    pipe = moft.load_pipeline(args.model)
    channels, record = moft.default_channels(args.model), pipeline_record(pipe)
    out = Path(args.out)
    work = Path(args.work_dir or f"{out}.parts")
    work.mkdir(parents=True, exist_ok=True)
    groups = [(p, s, r) for (s, r), p in zip(itertools.product(suite["seeds"], suite["requests"]),
                                             itertools.cycle(suite["prompts"]))]
    start, done = time.perf_counter(), 0
    for prompt, seed, req in groups:
        if time.perf_counter() - start > 60 * args.minutes:
            break
        run_group(pipe, suite, prompt, seed, req, channels, record, settings, work, model)
        done += 1
        print(f"{done}/{len(groups)} groups, {time.perf_counter() - start:.0f} s", flush=True)
    requests = {(p, s, r["name"]): json.loads(f.read_text()) for p, s, r in groups
                if (f := _request_file(work, model, suite, p, s, r)).exists()}
    rows = [json.loads(f.read_text()) for p, s, r in groups if (p, s, r["name"]) in requests
            for setting in [{"name": "unguided"}] + suite["settings"]
            if (f := _row_file(work, model, suite, p, s, r, setting, requests[p, s, r["name"]], record)).exists()]
    table = summarise(rows)
    shipped = default_row(suite, record, _schedule(suite)[0])
    for t in table:
        t["default"] = t["setting"] == shipped
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"suite": args.suite, "model": model, "groups_run": done, "groups_planned": len(groups),
              "minutes": round((time.perf_counter() - start) / 60, 1), "threads": 1,
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "settings": suite["settings"],
              "guidance": suite.get("guidance", {}), "default_row": shipped, "summary": table, "rows": rows}
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    out.with_suffix(".md").write_text(f"# Point drag: {report['model']}\n\n{len(groups)} planned requests (a source "
                                      f"without the prompt's object is not scored); each row counts those it has "
                                      f"run so far (SSIM outside: over those whose object's boxes leave a "
                                      f"background, their count in brackets when fewer). This call ran {done} in {report['minutes']} min (1 thread). "
                                      f"Written by `scripts/point_drag.py`."
                                      + (f" The row marked *default* ({shipped}) is what `moft control TRACKS` runs "
                                         "on this model when no guidance is given." if shipped else "") + "\n\n"
                                      + markdown_table(table) + "\n")
    print(markdown_table(table))


if __name__ == "__main__":
    main()
