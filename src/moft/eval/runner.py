"""Running a suite: every (prompt, seed, request, setting) item generated, scored and kept in a work folder.

Example:
    >>> from moft.eval.suite import load_suite
    >>> from moft.eval.scoring import summarise
    >>> suite = load_suite("benchmarks/general_metrics.json")
    >>> len(items(suite)) == len(suite["prompts"]) * len(suite["seeds"]) * len(suite["requests"]) * (1 + len(suite["settings"]))
    True
    >>> rows = run_suite(pipe, suite, "runs/general", channels)           # doctest: +SKIP
    >>> summarise(rows)[0]["motion_fidelity_lk"]                          # doctest: +SKIP

Workflow per item (the paper's T2V protocol, §5.1): each (prompt, seed, request) first makes the
unguided *source* video; a synthetic-object request finds its object there (``moft.eval.objects``),
a general one was planned against the model's size (``moft.eval.suite.check_suite``); each setting
then builds its target (``moft.method.control_target.build_target``, as ``moft control`` does) and
makes the guided video from the same noise; ``moft.eval.scoring`` scores it against the request.
The unguided source scored against the same request is the baseline row; a setting whose guidance
diverges is a failed request, not a crash.

On an image-to-video model (``moft.models.image.requires_image``) each (prompt, seed) gets an image
the suite makes (``moft.eval.objects.suite_image``: the prompt's objects in a still synthetic scene at
the model's frame size); the source and every guided row animate it from the same noise, a
synthetic-object request finds its object in the image, and a drag target drags the image's own
regions (as ``moft control --image``). Such rows also score frame 0 against the image
(``frame0_psnr``); the unguided rows carry the image's VAE round trip (``image_vae_psnr``), the
ceiling of a model that pastes the image latent as frame 0.

Each finished row is a JSON file named by the item's id in the work folder, so a run resumes where
it stopped and shards (``process_index`` of ``num_processes``: whole groups of one source video,
dealt round-robin) merge into the same rows (``collect``). An id depends on the item, the suite's
run settings, ``SCORER_VERSION``, a reference clip's bytes and ``run_identity`` (the weights and the
motion channels): rows of another model, channel file or scorer are never reused.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from pathlib import Path

import torch

from .metrics import psnr
from .objects import SUITE_IMAGE_VERSION, suite_image, synthetic_request
from .scoring import SCORER_VERSION, score_synthetic, score_trajectory, score_transfer, strict
from .suite import check_suite, protocol, suite_layers
from ..io.outputs import atomic_write_text
from ..io.trajectory import TrajectoryError
from ..method.control_target import build_target
from ..method.keep import LatentLog, drag_inputs
from ..method.sampler import GuidanceDiverged, sample
from ..method.settings import GuidanceConfig, resolve_settings
from ..method.targets import Target, TargetError
from ..method.transfer import TransferError, transfer_trajectory
from ..models.image import image_conditioning, requires_image, still_frames
from ..models.latents import decode_latents, encode_video
from ..models.pipeline import default_video_size, denoiser, pipeline_record, vae_scale


def run_identity(pipe, channels) -> str:
    """A fingerprint of what a row depends on beyond the suite: the denoiser's, text encoder's and VAE's
    weights (the first elements of every tensor; the VAE renders what is scored) and the motion channels. Rows of another model or
    channel file get other ids, so a work folder is never resumed with stale rows (the model's ``moft.json``
    settings enter the ids through ``with_model_defaults``); an image-to-video model's also hold
    ``SUITE_IMAGE_VERSION`` (the images the suite makes).

    Example:
        >>> run_identity(pipe, channels)  # doctest: +SKIP
        '5f0c2a9e41d7b3c8'
    """
    h = hashlib.sha1()
    for module in (denoiser(pipe), getattr(pipe, "text_encoder", None), getattr(pipe, "vae", None)):
        for name, param in (module.named_parameters() if module is not None else ()):
            h.update(name.encode())
            h.update(param.detach().flatten()[:64].float().cpu().numpy().tobytes())
    h.update(channels.digest().encode())
    if requires_image(pipe):
        h.update(f"suite image {SUITE_IMAGE_VERSION}".encode())
    return h.hexdigest()[:16]


def _file_digest(path: str) -> str:
    try:
        return hashlib.sha1(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def items(suite: dict, identity: str = "") -> list[dict]:
    """Every (prompt, seed, request, setting) in a fixed order, each with a stable id
    (which also depends on ``identity``, see ``run_identity``, and on a reference clip's bytes)."""
    out = []
    run = {k: suite.get(k) for k in ("guidance", "steps", "guidance_scale", "target")}
    clips = {r["reference_clip"]: _file_digest(r["reference_clip"]) for r in suite["requests"] if "reference_clip" in r}
    # one group per (prompt, seed, request): its settings share one unguided source video
    groups = itertools.product(suite["prompts"], suite["seeds"], suite["requests"])
    for group, (p, s, r) in enumerate(groups):
        for st in [{"name": "unguided", "unguided": True}] + suite["settings"]:
            item = {"prompt": p, "seed": s, "request": r, "setting": st}
            key = json.dumps(dict(item, run=run, scorer=SCORER_VERSION, clip=clips.get(r.get("reference_clip"))),
                             sort_keys=True) + identity  # any change: new item
            out.append(dict(item, id=hashlib.sha1(key.encode()).hexdigest()[:16], group=group))
    return out


def _channel_subset(channels, fraction: float | None) -> torch.Tensor:
    return channels.indices if fraction is None else channels.top(fraction)


def _target(pipe, reference, traj, channels, setting_extra, steps, source, kind, g: GuidanceConfig,
            image_cond: dict | None = None, proxy=None) -> Target | str:
    """The request's target under a setting's feature mode, channel share and target kind
    (``moft.method.control_target.build_target``, as ``moft control`` builds it), or why there is none;
    ``image_cond``: an image-to-video model's image conditioning (``source`` is then the image, held still);
    ``proxy``: ``source`` dragged along ``traj`` (``drag_inputs``)."""
    try:
        return build_target(pipe, traj, channels, kind=kind, steps=steps, guidance=g, video_size=source.shape[:3],
                            reference=reference, source=source, proxy=proxy, gain=setting_extra["gain"] or 1.0,
                            features=setting_extra["features"] or "moft",
                            indices=_channel_subset(channels, setting_extra["fraction"]), image_cond=image_cond)
    except (TargetError, TrajectoryError) as exc:  # vanilla without a reference; a zoom that curves cannot express
        return str(exc)


def _source(pipe, suite: dict, prompt: str, seed: int, cache: dict):
    """The unguided source of ``(prompt, seed)`` (made on first use into ``cache``, with the latents the keep
    levers need and, on an image-to-video model, the suite's image and its VAE round-trip PSNR):
    ``(SampleResult, LatentLog or None, image (H, W, 3) uint8 or None)``."""
    key = (prompt, seed)
    if key not in cache:
        record = pipeline_record(pipe)
        cfg = resolve_settings(record, *suite_layers(suite)).guidance_scale
        needs = any(resolve_settings(record, *suite_layers(suite, s)).guidance.needs_source
                    for s in suite["settings"] if not s.get("unguided"))
        log = LatentLog() if needs else None  # the source's latents after every step, for the keep levers
        image = None
        if requires_image(pipe):
            _, h, w = default_video_size(pipe)
            image = suite_image(prompt, seed, h, w)[0]  # (H, W, 3) uint8
            with torch.no_grad():  # the image through the VAE and back: what frame 0 can at best be
                round_trip = decode_latents(pipe, encode_video(pipe, image[None]))[0, 0]  # (H, W, 3)
            cache[("vae_psnr",) + key] = psnr(round_trip, image)
        cache[key] = sample(pipe, prompt, seed=seed, steps=suite.get("steps", 25), guidance_scale=cfg, callback=log,
                            image=image)
        cache[("log",) + key] = log.started(cache[key].initial_latents) if log is not None else None
        cache[("image",) + key] = image
    return cache[key], cache[("log",) + key], cache[("image",) + key]


def _guided(pipe, suite: dict, item: dict, src, log, image, traj, reference, channels):
    """The guided video of a setting: a ``SampleResult``, or a row's ``status`` when no target can be made,
    or a ``GuidanceDiverged``; with the seconds its target took."""
    record, steps = pipeline_record(pipe), suite.get("steps", 25)
    setting, cfg = item["setting"], resolve_settings(record, *suite_layers(suite)).guidance_scale  # the source's
    run = resolve_settings(record, *suite_layers(suite, setting), reference=reference is not None)
    g, target_kind, extra = run.guidance, run.target_kind, {k: setting.get(k) for k in ("features", "fraction", "gain")}
    if reference is not None and g.transfer == "drag":  # the clip's measured motion is the trajectory dragged
        try:
            traj, reference = transfer_trajectory(reference, traj), None
        except TransferError as exc:  # point regions: they follow their own tracks
            return str(exc), 0.0
    f, h, w = src.frames.shape[:3]
    # on image-to-video a drag target and a proxy start drag the image, held still (as make_target's from_image)
    still = still_frames(image, f) if image is not None else None  # (F, H, W, 3)
    from_image = still is not None and run.drags_image(from_trajectory=reference is None)
    dragged = still if from_image else src.frames
    built = time.perf_counter()
    # the regions (a point grown into its object), the drag proxy (F, H, W, 3), the keep levers (moft.method.keep)
    traj, proxy, keep = drag_inputs(pipe, g, traj, dragged, steps=steps, size=(h, w),
                                    latent_size=tuple(src.latents.shape[-2:]), log=log if g.needs_source else None)
    target = None
    if g.method != "cut-drag":  # the proxy start alone: no target
        cond = image_conditioning(pipe, image, num_frames=f) if image is not None else None
        target = _target(pipe, reference, traj, channels, extra, steps, dragged, target_kind, g, cond, proxy)
    if isinstance(target, str):
        return target, 0.0
    seconds = time.perf_counter() - built
    try:
        return sample(pipe, item["prompt"], seed=item["seed"], steps=steps, guidance_scale=cfg,
                      latents=src.initial_latents, target=target, guidance=g, keep=keep, image=image), seconds
    except GuidanceDiverged as exc:  # no video: the request failed (counted in direction success)
        return exc, seconds


def run_item(pipe, suite: dict, item: dict, channels, cache: dict) -> dict:
    """Generate and score one item; ``cache`` keeps source videos (and images) per (prompt, seed) and the
    requests' ``check_suite`` plans (made on first use)."""
    record = pipeline_record(pipe)
    prompt, seed, req, setting = item["prompt"], item["seed"], item["request"], item["setting"]
    src, log, image = _source(pipe, suite, prompt, seed, cache)
    f, h, w = src.frames.shape[:3]
    kind = protocol(req)
    row = {"id": item["id"], "prompt": prompt, "seed": seed, "request": req["name"], "setting": setting["name"],
           "protocol": kind}
    if kind == "synthetic-object":  # the object is found in the source's frame 0, or in the image
        made = synthetic_request(src.frames if image is None else still_frames(image, f), prompt, req, seed)
        if isinstance(made, str):
            return dict(row, status=made)
        parts, traj, reference = made
    else:
        if "plans" not in cache:
            cache["plans"] = check_suite(suite, f, h, w, (h // vae_scale(pipe), w // vae_scale(pipe)), record)
        plan = cache["plans"][suite["requests"].index(req)]
        traj, reference = plan["trajectory"], plan["reference"]
    if setting.get("unguided"):
        frames, seconds = src.frames, 0.0
    else:
        out, row["target_seconds"] = _guided(pipe, suite, item, src, log, image, traj, reference, channels)
        if isinstance(out, str):
            return dict({k: v for k, v in row.items() if k != "target_seconds"}, status=out)
        if isinstance(out, GuidanceDiverged):
            failed = "direction_success" if kind == "synthetic-object" else "direction_success_lk"
            return dict(row, status="ok", diverged=str(out), **({failed: 0.0} if kind != "motion-transfer" else {}))
        frames, seconds = out.frames, out.seconds
        row["final_loss"] = out.losses[-1]["loss"] if out.losses else None
    if kind == "synthetic-object":
        scores, reasons = score_synthetic(frames, src.frames, parts, traj)
    elif kind == "trajectory":
        scores, reasons = score_trajectory(frames, src.frames, traj)
    else:
        scores, reasons = score_transfer(frames, src.frames, reference, traj.regions[0].rasterize(h, w))
    scores["seconds"] = seconds
    if image is not None:  # frame 0 against the image; the image's own VAE round trip once per source
        scores["frame0_psnr"] = psnr(frames[0], image)
        if setting.get("unguided"):
            scores["image_vae_psnr"] = cache[("vae_psnr", prompt, seed)]
    return dict(row, status="ok", **strict(scores, reasons))


def run_suite(pipe, suite: dict, work_dir: str | Path, channels, *, process_index: int = 0, num_processes: int = 1,
              progress=None) -> list[dict]:
    """Run this process's share of the items, skipping items already finished in ``work_dir``;
    returns this share's rows. Shares are whole groups (every setting of one prompt, seed and
    request, dealt round-robin), so the work is balanced and each source video is made once.
    The general requests are checked at the model's size (``check_suite``) before any sampling."""
    f, h, w = default_video_size(pipe)
    cache: dict = {"plans": check_suite(suite, f, h, w, (h // vae_scale(pipe), w // vae_scale(pipe)),
                                        pipeline_record(pipe))}
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    todo = [it for it in items(suite, run_identity(pipe, channels)) if it["group"] % num_processes == process_index]
    rows = []
    for n, item in enumerate(todo):
        done = work / f"{item['id']}.json"
        if done.exists():
            rows.append(json.loads(done.read_text()))
        else:
            with torch.random.fork_rng():  # items reproducible whatever ran before; the caller's RNG untouched
                torch.manual_seed(0)
                row = run_item(pipe, suite, item, channels, cache)
            atomic_write_text(done, json.dumps(row, allow_nan=False))
            rows.append(row)
        if progress is not None:
            progress(n + 1, len(todo))
    return rows


def collect(suite: dict, work_dir: str | Path, identity: str) -> list[dict]:
    """All finished rows of a suite, in item order (identical however the work was sharded);
    ``identity`` is ``run_identity(pipe, channels)`` of the run."""
    work = Path(work_dir)
    return [json.loads((work / f"{it['id']}.json").read_text()) for it in items(suite, identity)
            if (work / f"{it['id']}.json").exists()]
