"""The ``moft`` command line.

Example:
    $ moft info
    $ moft extract --prompt "a red disk moving left" --out feats.safetensors --figure feats.png
    $ moft extract --image disk.png --prompt "a red disk moving right" --model moft-tiny-wan-i2v --out disk.safetensors
    $ moft fit-channels --out channels.safetensors --method inversion
    $ moft control examples/object_left.json --out left.gif --prompt "a red disk" --save-source

Bad input prints one line ``error: ...`` and exits with code 2; outputs are written atomically.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Optional, Tuple

import safetensors.torch
import torch
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..eval.runner import collect, run_identity, run_suite
from ..eval.scoring import markdown_table, summarise
from ..eval.suite import load_suite, suite_layers, with_model_defaults
from .. import __version__
from ..io.tracks import read_tracks
from ..io.image import read_image
from ..io.trajectory import load_trajectory
from ..io.jsonio import strict_json
from ..io.outputs import output_set
from ..io.video import CLIP_FPS, check_clip_rule, read_clip, read_video, write_video
from ..method.capture import capture, capture_sites
from ..method.channels import MotionChannels, default_channels
from ..method.channels import fit_channels as fit_motion_channels
from ..method.settings import GUIDANCE_FIELDS, GuidanceConfig, resolve_settings
from ..method.sampler import sample
from ..method.targets import Target
from ..models.adapters import architecture_of, call_denoiser, default_site
from ..models.latents import latent_channels, probe_conditioning, unknown_words
from ..models.image import still_frames
from ..models.device import execution_device, resolve_device, resolve_dtype, resolve_offload
from ..models import loading
from ..models.loading import load_pipeline
from ..models.pipeline import (DEFAULTS_FILE, default_video_size, denoiser, latent_frames, model_record,
                               pipeline_record, resolve_model, temporal_scale, vae_scale)
from .control import (ControlError, check_channels, check_init_latents, check_settings, check_trajectory_frames,
                      plan_control, plan_settings, run_control)
from .extract import extract as extract_features
from .defaults import control_defaults_lines, vocabulary_line
from .figures import extraction_figure, report_figure
from .outcome import outcome, outcome_lines
from .preview import find_objects, write_preview
from .locate import (check_defaults_folder, folder_train_timesteps, locate as run_locate, model_folder, parse_list,
                     plan_locate, write_defaults as save_defaults)

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Training-free motion interpretation and control in video diffusion models (MOFT).")


class UsageError(ValueError):
    """A command line that cannot work (conflicting or missing options, an output over an input)."""


def _is_user_error(exc: BaseException) -> bool:
    """moft's own error classes (ValueError subclasses defined in moft) and OS errors on the user's
    paths are the user's; anything else is a bug and keeps its traceback."""
    if isinstance(exc, (UsageError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return True
    return isinstance(exc, ValueError) and type(exc) is not ValueError and type(exc).__module__.startswith("moft.")


@contextmanager
def _errors():
    """Turn user errors into one line on stderr and exit code 2; other exceptions propagate (exit 1)."""
    try:
        yield
    except Exception as exc:
        if not _is_user_error(exc):
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        typer.echo(f"error: {msg}", err=True)
        raise typer.Exit(2) from None


@contextmanager
def _progress(label: str):
    """A rich progress bar on stderr, shown from the first update; yields ``update(done, total, phase=None)``.
    A new ``phase`` (e.g. control's ``source``, ``invert``, ``guide``) starts a new bar line."""
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True))
    tasks: dict = {}

    def update(done: int, total: int, phase: str | None = None):
        if not tasks:
            bar.start()
        if phase not in tasks:
            tasks[phase] = bar.add_task(f"{label} {phase}" if phase else label, total=total)
        bar.update(tasks[phase], completed=done, total=total)

    try:
        yield update
    finally:
        if tasks:
            bar.stop()


def _where(device: str, dtype: str, offload: str) -> dict:
    """``--device``, ``--dtype`` and ``--offload`` resolved, so a device that is not there fails (one line, exit 2)
    before anything loads."""
    return {"device": resolve_device(device), "dtype": resolve_dtype(dtype), "offload": resolve_offload(offload)}


def _load(model: str | None, where: dict | None = None):
    torch.set_grad_enabled(True)
    return load_pipeline(model, **(where or {}))  # the module-level name: tests swap moft.front.cli.load_pipeline


def _channels(path: Optional[Path], model: str | None, required: bool):

    if path is not None:
        return MotionChannels.load(path)
    resolve_model(model)  # a missing model is "no such model", not "no shipped channels"
    ch = default_channels(model)
    if ch is None and required:
        raise UsageError("this model has no shipped motion channels; run `moft fit-channels` and pass --channels")
    return ch


def _check_out(path: Path, suffixes: tuple[str, ...]):
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"{path}: output must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise UsageError(f"{path}: is an existing folder; give a file name")


def _no_clobber(inputs: dict[str, Optional[Path]], outputs: dict[str, Optional[Path]]):
    """Refuse a run in which an output would overwrite one of the run's inputs or another output."""
    seen: dict[str, str] = {}
    for name, path in inputs.items():
        if path is not None:
            seen.setdefault(os.path.realpath(path), name)
    for name, path in outputs.items():
        if path is None:
            continue
        real = os.path.realpath(path)
        if real in seen:
            raise UsageError(f"{path}: {name} would overwrite the {seen[real]}; choose another name")
        seen[real] = name


def _not_into_folders(outputs: dict[str, Path], folders: dict[str, Optional[Path]], new_files: tuple[str, ...] = ()):
    """Refuse an output that is a file (or folder) of a folder the run reads or writes, or one of its
    ``new_files`` (names the run creates at the folder's top), so a run never replaces its own inputs."""
    for what, folder in folders.items():
        if folder is None or not Path(folder).is_dir():
            continue
        root = os.path.realpath(folder)
        made = {os.path.join(root, name) for name in new_files}
        for name, path in outputs.items():
            real = os.path.realpath(path)
            if os.path.commonpath([root, real]) == root and (os.path.exists(real) or real in made or real == root):
                raise UsageError(f"{path}: {name} would overwrite a file of the {what} {folder}; choose another name")


def _probe_clip(path: Path):
    """Decode a clip's first frame before the model loads: a missing, unreadable or empty clip fails fast."""

    read_clip(path, 1)


def _read_clip(path: Path, pipe, model: str | None, start: int, stride: Optional[int], fps: Optional[float],
               fit: str):
    """The model's frames of any clip (``moft.io.video.read_clip``'s rule)."""

    f, h, w = default_video_size(pipe)
    clip_fps = pipeline_record(pipe).fps
    return read_clip(path, f, size=(h, w), start=start, stride=stride, fps=fps, fit=fit,
                     clip_fps=CLIP_FPS if clip_fps is None else clip_fps)


def _warn_unknown_words(pipe, prompt: Optional[str]):
    """Warn about the prompt's words the model reads as unknown, or about a prompt a model without text ignores."""
    if getattr(pipe, "tokenizer", None) is None:  # SVD: the image is its only conditioning
        if prompt:
            typer.echo(f"warning: {type(pipe).__name__} takes no prompt; {prompt!r} is ignored", err=True)
        return
    words = unknown_words(pipe.tokenizer, prompt or "")
    if words:
        typer.echo(f"warning: the model does not know {', '.join(repr(w) for w in words)}; "
                   f"{'it reads' if len(words) == 1 else 'they read'} as <unk> (its words: `moft info --model M`)", err=True)


MODEL_HELP = "moft-tiny (default), moft-tiny-wan, a pipeline folder or a hub id"
START_HELP = "clip: first frame to take"
STRIDE_HELP = "clip: frames between frames taken (default: the clip's fps / the model's fps, about 1 s for 8 frames)"
FPS_HELP = "clip: sample the clip at this frame rate instead of --stride (default: none, see --stride)"
FIT_HELP = "clip and --image: crop (centre crop to the model's aspect, then resize), resize (stretch) or pad (black bars)"


# where every command runs (one definition, reused by each command)
DEVICE = typer.Option("auto", "--device", help="auto (the accelerator when there is one, else the CPU), cpu, cuda, "
                      "cuda:N or mps")
DTYPE = typer.Option("float32", "--dtype", help="the denoiser's (and text encoder's) dtype: float32, bfloat16 or "
                     "float16; latents, losses and optimiser state stay float32, the VAE float32")
OFFLOAD = typer.Option("none", "--offload", help="none, model (each model on the device only while it runs: "
                       "diffusers' model CPU offload) or group (block by block: least memory, slowest)")


def _version(value: bool):
    if value:
        typer.echo(f"moft {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print moft's version and exit")):
    """Training-free motion interpretation and control in video diffusion models (MOFT)."""


@app.command()
def info(model: Optional[str] = typer.Option(None, help=MODEL_HELP), device: str = DEVICE, dtype: str = DTYPE,
         offload: str = OFFLOAD):
    """Model class, adapter, capture sites and shapes, its words, and the control defaults it runs with."""
    with _errors():
        pipe = _load(model, _where(device, dtype, offload))
        net = denoiser(pipe)
        arch = architecture_of(net)
        f, h, w = default_video_size(pipe)
        sites = capture_sites(net)
        s = vae_scale(pipe)
        z = torch.zeros(1, latent_frames(pipe, f), latent_channels(pipe), h // s, w // s, device=execution_device(pipe))
        with torch.no_grad(), capture(net, stop=True) as cap:
            call_denoiser(net, z, 500, probe_conditioning(pipe, z))
        ch = default_channels(model)
        lines = [
            f"pipeline      {type(pipe).__name__}",
            f"denoiser      {type(net).__name__} ({sum(p.numel() for p in net.parameters()) / 1e6:.2f}M params)",
            f"adapter       {arch.name}",
            f"video         {f} frames x {h}x{w} px, latents {z.shape[1]}x{latent_channels(pipe)}x{h // s}x{w // s}",
            f"default site  {default_site(net)} -> (B, F, C, H, W) = {tuple(cap.output.shape)}",
            f"blocks        {', '.join(sites['blocks'])}",
            f"temporal      {len(sites['temporal'])} modules, e.g. {', '.join(sites['temporal'][:3])}",
            f"channels      {'shipped: ' + str(ch.indices.tolist()) if ch is not None else 'none shipped'}",
            "runs on       {device}, denoiser {dtype}, offload {offload}".format(**loading.placement(pipe)),
        ]
        words = vocabulary_line(getattr(pipe, "tokenizer", None))
        typer.echo("\n".join(lines + ([words] if words else []) + control_defaults_lines(pipeline_record(pipe))))


@app.command()
def extract(
    out: Path = typer.Option(..., help="FEATURES.safetensors to write"),
    prompt: Optional[str] = typer.Option(None, help="generate this prompt and take its features (default: none; give it or --video)"),
    video: Optional[Path] = typer.Option(None, help="clip to invert instead of a prompt: MP4/WebM/GIF/PNG folder, "
                                         "any size and length (see --start, --stride, --fps, --fit; default: none)"),
    image: Optional[Path] = typer.Option(None, help="image to animate with --prompt (image-to-video models, e.g. "
                                         "moft-tiny-wan-i2v): PNG, JPEG or WebP of any size, fitted by --fit; the "
                                         "features are those of its animation (default: none)"),
    model: Optional[str] = typer.Option(None, help=MODEL_HELP),
    seed: int = typer.Option(0),
    timestep: int = typer.Option(200, help="timestep of the features (generation or inversion)"),
    channels: Optional[Path] = typer.Option(None, help="motion channel file (default: the model's shipped one)"),
    site: Optional[str] = typer.Option(None, help="module path to capture (default: the architecture's, up_blocks.1)"),
    steps: int = typer.Option(25, help="sampling steps (DDIM, or the pipeline's own scheduler on flow models)"),
    figure: Optional[Path] = typer.Option(None, help="also write a PNG: the paper's interpretation figures (PCA of MOFT "
                                          "by motion direction, cosine maps from a point on the moving object, "
                                          "arrows of the measured motion; default: none)"),
    save_video: Optional[Path] = typer.Option(None, help="also write the video analysed (.gif or .mp4; default: none)"),
    start: int = typer.Option(0, help=START_HELP),
    stride: Optional[int] = typer.Option(None, help=STRIDE_HELP),
    fps: Optional[float] = typer.Option(None, help=FPS_HELP),
    fit: str = typer.Option("crop", help=FIT_HELP),
    device: str = DEVICE,
    dtype: str = DTYPE,
    offload: str = OFFLOAD,
):
    """Features and MOFT of a prompt's generated video (an image's animation with --image) or of a given clip."""
    with _errors():

        _check_out(out, (".safetensors",))
        if figure is not None:
            _check_out(figure, (".png",))
        if save_video is not None:
            _check_out(save_video, (".gif", ".mp4"))
        if image is not None and video is not None:
            raise UsageError("--image is animated from --prompt; --video is inverted as it is: give one of them")
        if (prompt is None) == (video is None):
            raise UsageError("give exactly one of --prompt or --video" + (" (--image needs --prompt)" if image else ""))
        _no_clobber({"video": video, "channel file": channels, "image": image},
                    {"--out": out, "--figure": figure, "--save-video": save_video})
        check_settings(steps=steps, seed=seed)
        check_clip_rule(start=start, stride=stride, fps=fps, fit=fit)
        if video is not None:
            _probe_clip(video)
        picture = read_image(image) if image is not None else None  # (H, W, 3) uint8; a bad file stops here
        ch = _channels(channels, model, required=False)
        pipe = _load(model, _where(device, dtype, offload))
        _warn_unknown_words(pipe, prompt)
        clip = _read_clip(video, pipe, model, start, stride, fps, fit) if video is not None else None
        with _progress("extract") as update:
            ex = extract_features(pipe, prompt=prompt, video=clip.frames if clip else None, timestep=timestep, seed=seed,
                     channels=ch, site=site, steps=steps, progress=update, image=picture, fit=fit)
        ex.meta["model"] = model or "moft-tiny"
        if video is not None:
            ex.meta.update(video=str(video), clip=clip.describe())
        if image is not None:
            ex.meta["image_file"] = str(image)
        with output_set() as stage:  # the features, the figure and the video, or none
            ex.save(stage(out))
            if figure is not None:
                extraction_figure(ex, stage(figure))
            if save_video is not None:
                write_video(stage(save_video), ex.frames)
        typer.echo(f"wrote {out}: features {tuple(ex.features.shape)}, moft {tuple(ex.moft.shape)}")


@app.command("fit-channels")
def fit_channels(
    out: Path = typer.Option(..., help="CHANNELS.safetensors to write (+ .json metadata)"),
    model: Optional[str] = typer.Option(None, help=MODEL_HELP),
    fraction: float = typer.Option(0.04, help="share of channels kept per axis (paper: 4%)"),
    method: str = typer.Option("inversion", help="inversion (paper) or noise (one noised forward)"),
    rank: str = typer.Option("pca", help="pca (paper: |PC1 loading|) or separation (|d'| between opposite pans)"),
    timestep: int = typer.Option(200, help="timestep of the features"),
    scenes: int = typer.Option(4, help="still scenes per axis (two pans each)"),
    images: Optional[Path] = typer.Option(None, help="folder of still pictures to pan (default: synthetic scenes)"),
    site: Optional[str] = typer.Option(None, help="module path to capture (default: the architecture's, up_blocks.1)"),
    seed: int = typer.Option(0),
    device: str = DEVICE,
    dtype: str = DTYPE,
    offload: str = OFFLOAD,
):
    """Fit horizontal and vertical motion channels on synthetic pans (PCA, as the paper, or d')."""
    with _errors():

        _check_out(out, (".safetensors",))
        if isinstance(scenes, bool) or scenes < 1:
            raise UsageError(f"--scenes must be >= 1, got {scenes}")
        if not 0 < fraction <= 1:
            raise UsageError(f"--fraction must be in (0, 1], got {fraction}")
        pics = None
        if images is not None:
            files = sorted(p for p in Path(images).glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
            if not files:
                raise UsageError(f"{images}: no .png/.jpg pictures")
            pics = [read_video(p)[0] for p in files]
        pipe = _load(model, _where(device, dtype, offload))
        with _progress("fit-channels") as update:
            ch = fit_motion_channels(pipe, fraction=fraction, method=method, rank=rank, timestep=timestep, scenes=scenes, site=site,
                     seed=seed, images=pics, model_name=model or "moft-tiny", progress=update)
        ch.save(out)
        ev = ch.meta["explained_variance_ratio"]
        typer.echo(f"wrote {out}: horizontal {ch.horizontal.tolist()}, vertical {ch.vertical.tolist()} "
                   f"(PC1 explains {ev['horizontal'][0]:.2f} / {ev['vertical'][0]:.2f})")


FIELD_FLAGS = {"steps": "--guided-steps", "start": "--start-from"}  # GuidanceConfig fields whose flag is not --field


def _guidance_help(name: str) -> str:
    """An option's help from ``GuidanceConfig``'s own field metadata (``GUIDANCE_FIELDS``) and default."""

    default = getattr(GuidanceConfig(), name)
    shown = {True: "on", False: "off", None: "none"}.get(default, default) if not isinstance(default, tuple) else \
        ":".join(map(str, default))
    return f"{GUIDANCE_FIELDS[name]['help']}; without a moft.json: {shown} (default: see `moft info --model M`)"


def _guided_steps(text: Optional[str]):
    """``START:END`` as a pair of integers, or None."""
    if text is None:
        return None
    try:
        start, end = (int(v) for v in text.split(":"))
    except ValueError:
        raise UsageError(f"--guided-steps: expected START:END, got {text!r}") from None
    return start, end


def _control_outputs(out: Path, save_source: bool, save_proxy: bool, save_target: Optional[Path],
                     preview: bool = False) -> dict:
    """Every file a control run writes, by what it is."""
    stem = out.with_suffix("")
    return {"--out": out, "the report": Path(f"{stem}.report.json"),
            "the latents": Path(f"{stem}.latents.safetensors"),
            "the source video": Path(f"{stem}.source{out.suffix}") if save_source else None,
            "the proxy video": Path(f"{stem}.proxy{out.suffix}") if save_proxy else None,
            "--save-target": save_target, "the preview": Path(f"{stem}.preview.png") if preview else None}


def _read_latents(path: Optional[Path]):

    if path is None:
        return None
    try:
        return safetensors.torch.load_file(str(path))["latents"]
    except Exception:
        raise UsageError(f"{path}: not a moft latents file") from None


def _write_control(res, out: Path, outputs: dict, report: dict, save_source: bool, save_proxy: bool,
                   save_target: Optional[Path]):
    """All of a control run's files, or none (even on Ctrl-C)."""

    text = strict_json(report)  # before writing anything: a report that cannot be written stops the set
    with output_set() as stage:
        write_video(stage(out), res.frames)
        if save_source:
            write_video(stage(outputs["the source video"]), res.source_frames)
        if save_proxy:
            write_video(stage(outputs["the proxy video"]), res.proxy_frames)
        stage(outputs["the latents"]).write_bytes(
            safetensors.torch.save({"latents": res.result.initial_latents.contiguous().float()}))
        if save_target is not None:
            res.target.save(stage(save_target))
        stage(outputs["the report"]).write_text(text)


@app.command()
def control(
    trajectory: Path = typer.Argument(..., help="trajectory JSON (see README); directions are the content's: "
                                      "\"all\" moving right shows the content moving right (in camera terms a "
                                      "pan to the left); or point tracks: ComfyUI/ATI JSON, Wan-Move/CoTracker "
                                      "tracks.npy, DragAnything JSON, SG-I2V traj.npy"),
    out: Path = typer.Option(..., help="OUT.gif or OUT.mp4; OUT.report.json and OUT.latents.safetensors are "
                             "written beside it"),
    tracks_size: Optional[Tuple[int, int]] = typer.Option(None, help="W H of the frame point tracks were drawn on "
                                                         "(default: the output frame)"),
    points: Optional[str] = typer.Option(None, help="point drag: paper (Eq. 9: MOFT, then the point loss), dift "
                                         "(the point loss alone) or off (default: see `moft info --model M`; a track "
                                         "file without --points drags the object under each point, --point-region "
                                         "segment, with the model's track defaults: its `point tracks` line)"),
    point_weight: Optional[float] = typer.Option(None, help=_guidance_help("point_weight")),
    point_region: Optional[str] = typer.Option(None, help=_guidance_help("point_region")),
    drag_frame: Optional[int] = typer.Option(None, help=_guidance_help("drag_frame")),
    model: Optional[str] = typer.Option(None, help=MODEL_HELP),
    prompt: Optional[str] = typer.Option(None, help="text prompt (default: see `moft info --model M`)"),
    seed: int = typer.Option(0, help="initial noise, 0..2**63-1"),
    steps: int = typer.Option(25, help="sampling steps (DDIM, or the pipeline's own scheduler on flow models)"),
    guidance_scale: Optional[float] = typer.Option(None, help="CFG scale (default: see `moft info --model M`)"),
    image: Optional[Path] = typer.Option(None, help="image to animate (image-to-video models, e.g. moft-tiny-wan-i2v): "
                                         "PNG, JPEG or WebP of any size, fitted by --fit; regions are placed on it"),
    preview: bool = typer.Option(False, "--preview", help="look, then ask: write only OUT.preview.png (frame 0 of the "
                                 "unguided video with each region, its path and the object found in it) and stop "
                                 "before guidance (one unguided generation)"),
    reference: Optional[Path] = typer.Option(None, help="reference clip whose motion to copy: MP4/WebM/GIF/PNG "
                                             "folder, any size and length (see --start, --stride, --fps, --fit; "
                                             "default: none, the trajectory gives the motion)"),
    target: Optional[Path] = typer.Option(None, help="a saved target file (from --save-target; default: none)"),
    save_target: Optional[Path] = typer.Option(None, help="write the target used to this .safetensors (default: not written)"),
    init_latents: Optional[Path] = typer.Option(None, help="initial noise (.safetensors written by an earlier run; default: from --seed)"),
    save_source: bool = typer.Option(False, help="also write OUT.source.EXT: the unguided video from the same noise"),
    save_proxy: bool = typer.Option(False, help="also write OUT.proxy.EXT: the drag proxy (drag targets and proxy starts)"),
    channels: Optional[Path] = typer.Option(None, help="motion channel file (default: the model's shipped one)"),
    guided_steps: Optional[str] = typer.Option(None, help=_guidance_help("steps")),
    iterations: Optional[int] = typer.Option(None, help=_guidance_help("iterations")),
    step_size: Optional[float] = typer.Option(None, help=_guidance_help("step_size")),
    weight: Optional[float] = typer.Option(None, help=_guidance_help("weight")),
    loss: Optional[str] = typer.Option(None, help=_guidance_help("loss")),
    shared_kv: Optional[bool] = typer.Option(None, "--shared-kv/--no-shared-kv", help=_guidance_help("shared_kv")),
    grad_mask: Optional[str] = typer.Option(None, help=_guidance_help("grad_mask")),
    optimizer: Optional[str] = typer.Option(None, help=_guidance_help("optimizer")),
    step_size_end: Optional[float] = typer.Option(None, help=_guidance_help("step_size_end")),
    distance: Optional[str] = typer.Option(None, help=_guidance_help("distance")),
    grad_every: Optional[int] = typer.Option(None, help=_guidance_help("grad_every")),
    target_mode: Optional[str] = typer.Option(None, help=_guidance_help("target_mode")),
    target_timesteps: Optional[str] = typer.Option(None, help=_guidance_help("target_timesteps")),
    keep: Optional[str] = typer.Option(None, help=_guidance_help("keep")),
    keep_until: Optional[int] = typer.Option(None, help=_guidance_help("keep_until")),
    start_from: Optional[str] = typer.Option(None, help=_guidance_help("start")),
    release: Optional[int] = typer.Option(None, help=_guidance_help("release")),
    method: Optional[str] = typer.Option(None, help=_guidance_help("method")),
    transfer: Optional[str] = typer.Option(None, help=_guidance_help("transfer")),
    gain: float = typer.Option(1.0, help="strength of synthesized target curves, 0 < gain <= 100"),
    target_kind: Optional[str] = typer.Option(None, help="curves (paper: region-mean curves from the channels) or "
                                              "drag (the unguided video's regions dragged along the trajectory, "
                                              "inverted) (default: see `moft info --model M`)"),
    start: int = typer.Option(0, help=START_HELP),
    stride: Optional[int] = typer.Option(None, help=STRIDE_HELP),
    fps: Optional[float] = typer.Option(None, help=FPS_HELP),
    fit: str = typer.Option("crop", help=FIT_HELP),
    checkpointing: Optional[bool] = typer.Option(None, "--checkpointing/--no-checkpointing", help="recompute the "
                                                 "denoiser's blocks in the backward pass of guidance: less memory, "
                                                 "more time (default: see `moft info --model M`)"),
    autocast: Optional[str] = typer.Option(None, help="none, bfloat16 or float16: run guidance's loss forward under "
                                           "autocast; latents and loss stay float32 (default: see `moft info --model M`)"),
    device: str = DEVICE,
    dtype: str = DTYPE,
    offload: str = OFFLOAD,
):
    """Generate a video whose regions move as the trajectory says."""
    with _errors():
        flags = {"steps": _guided_steps(guided_steps), "iterations": iterations, "step_size": step_size,
                 "weight": weight, "loss": loss, "shared_kv": shared_kv, "grad_mask": grad_mask, "optimizer": optimizer,
                 "step_size_end": step_size_end, "distance": distance, "grad_every": grad_every,
                 "target_mode": target_mode, "target_timesteps": target_timesteps, "keep": keep,
                 "keep_until": keep_until, "start": start_from, "release": release, "method": method,
                 "transfer": transfer, "checkpointing": checkpointing,
                 "autocast": None if autocast in (None, "none") else autocast, "point_weight": point_weight,
                 "point_region": point_region, "drag_frame": drag_frame, "points": points}
        where = _where(device, dtype, offload)
        _control(trajectory, out, model, prompt, seed, steps, guidance_scale, reference, target, save_target,
                 init_latents, save_source, save_proxy, channels, flags, gain, target_kind, (start, stride, fps, fit),
                 where, preview, image, tracks_size)


def _control(trajectory, out, model, prompt, seed, steps, guidance_scale, reference, target, save_target,
             init_latents, save_source, save_proxy, channels, flags, gain, target_kind, clip_rule, where,
             preview=False, image=None, tracks_size=None):
    """``moft control``: every check that needs no model (``plan_settings``), then the model, then
    ``plan_control`` (every check against it), then the run and its files."""

    _check_out(out, (".gif", ".mp4"))
    outputs = _control_outputs(out, save_source, save_proxy, save_target, preview)
    _no_clobber({"trajectory": trajectory, "reference": reference, "target": target,
                 "init latents": init_latents, "channel file": channels, "image": image}, outputs)
    if save_target is not None:
        _check_out(save_target, (".safetensors",))
    for name, path in outputs.items():
        if path is not None and path.is_dir():
            raise UsageError(f"{path}: {name} would replace an existing folder; give another --out")
    resolve_model(model)  # "no such model" before anything that reads the folder
    record = model_record(model)
    tracks_file = _is_tracks_file(trajectory)
    given = {k: v for k, v in flags.items() if v is not None}
    try:  # a track file: the objects under its points dragged with the folder's track settings (unless --points)
        run = plan_settings(record, steps=steps, seed=seed, gain=gain, guidance_scale=guidance_scale,
                            target_kind=target_kind, prompt=prompt, flags=given,
                            drags=target is None, reference=reference is not None,
                            tracks=tracks_file and "points" not in given)
    except ControlError as exc:  # a flag's value: name the flag (a moft.json's: the message names the file)
        if exc.field is None or not str(exc).startswith(exc.field):
            raise
        flag = FIELD_FLAGS.get(exc.field, f"--{exc.field.replace('_', '-')}")
        raise UsageError(f"{flag}: {str(exc)[len(exc.field):].strip()}") from None
    proxied = run.target_kind == "drag" or run.guidance.start == "proxy"  # a drag target's or a cut-and-drag start's
    if save_proxy and (not proxied or target is not None or (reference is not None and run.guidance.transfer != "drag")):
        raise UsageError("--save-proxy: only a drag target or a proxy start made from the trajectory (or from a clip's "
                         "motion, --transfer drag) has a proxy video")
    if save_target is not None and not run.guidance.iterates and target is None:
        raise UsageError("--save-target: --iterations 0 or --method cut-drag runs no guidance and makes no target")
    start, stride, fps, fit = clip_rule
    check_clip_rule(start=start, stride=stride, fps=fps, fit=fit)
    if reference is not None:
        _probe_clip(reference)
    if tracks_size is not None and (not tracks_file or min(tracks_size) < 1):
        raise UsageError("--tracks-size: W H, two positive integers, for a point track file")
    if tracks_file:  # point tracks: read (and checked) now when the folder names the video size
        traj = _read_tracks_file(trajectory, record.frames, (record.width, record.height), tracks_size)
    else:
        traj = _trajectory_before_load(trajectory, record.frames, reference is None)
    picture = read_image(image) if image is not None else None  # (H, W, 3) uint8; a bad file stops here
    tgt = Target.load(target) if target is not None else None
    ch = _channels(channels, model, required=tgt is None and reference is None and run.guidance.iterates)
    init = _read_latents(init_latents)
    pipe = _load(model, where)
    f = _frames_of(pipe, init, init_latents)
    if tracks_file:
        _, h, w = default_video_size(pipe)
        traj = _read_tracks_file(trajectory, f, (w, h), tracks_size)
    elif traj is None or traj.frames != f or init is not None:
        traj = load_trajectory(trajectory, default_frames=f)
    _warn_unknown_words(pipe, run.prompt)
    clip = _read_clip(reference, pipe, model, start, stride, fps, fit) if reference is not None else None
    plan = _located(trajectory, lambda: plan_control(
        pipe, traj, prompt=run.prompt, channels=ch, reference=clip.frames if clip else None, target=tgt, seed=seed,
        steps=steps, guidance_scale=run.guidance_scale, guidance=run.guidance, init_latents=init,
        keep_source=save_source, gain=gain, target_kind=run.target_kind, image=picture, fit=fit))
    traj = plan.trajectory if tracks_file else traj  # the tracks as point regions on the output frame
    if preview:
        return _preview(pipe, traj, outputs["the preview"], prompt=run.prompt, seed=seed, steps=steps,
                        guidance_scale=run.guidance_scale, num_frames=plan.size[0], latents=init, image=plan.image)
    with _progress("control") as update:
        res = run_control(pipe, plan, progress=update)
    seen = res.source_frames if res.source_frames is not None else res.frames
    for obj in find_objects(seen, traj) if traj is not None else []:
        if obj.warning:
            typer.echo(f"warning: {obj.warning} (look first: --preview)", err=True)
    achieved = outcome(res.frames, traj, res.source_frames, clip.frames[:len(res.frames)] if clip else None) \
        if traj is not None else None
    report = dict(res.report, model=model or "moft-tiny", trajectory=str(trajectory),
                  reference=str(reference) if reference else None,
                  reference_clip=clip.describe() if clip else None, target_file=str(target) if target else None,
                  init_latents=str(init_latents) if init_latents else None,
                  latents_file=str(outputs["the latents"]), channels_file=str(channels) if channels else "shipped",
                  outcome=achieved)
    _write_control(res, out, outputs, report, save_source, save_proxy, save_target)
    losses = res.result.losses
    what = (f"loss {losses[0]['loss']:.4g} -> {losses[-1]['loss']:.4g}" if losses
            else "cut-and-drag, no gradients" if plan.guidance.method == "cut-drag" else "unguided")
    typer.echo(f"wrote {out} and {outputs['the report']} ({res.result.seconds:.1f} s; {what})")
    if achieved is not None:
        typer.echo("\n".join(outcome_lines(achieved)))


def _preview(pipe, traj, path: Path, **sampling):
    """``moft control --preview``: the unguided video from the run's noise (or, animating an image, the image
    itself: it is frame 0), drawn with the request; stop."""
    image = sampling["image"]
    if image is not None:  # nothing to generate: the video starts from the image, still
        frames = still_frames(image, sampling["num_frames"])  # (F, H, W, 3)
        what = "the image"
    else:
        with _progress("preview") as update:
            frames = sample(pipe, sampling.pop("prompt"), progress=lambda done, total: update(done, total),
                            **sampling).frames
        what = f"frame 0 of the unguided video (seed {sampling['seed']})"
    with output_set() as stage:
        found = write_preview(stage(path), frames, traj)
    typer.echo(f"wrote {path}: {what}, regions and paths drawn")
    h, w = frames.shape[1:3]
    for obj in found:
        if obj.warning:
            typer.echo(f"warning: {obj.warning}", err=True)
        elif obj.centre is not None:
            typer.echo(f"region {obj.region}: object at x={obj.centre[0] / w:.2f}, y={obj.centre[1] / h:.2f} of the "
                       f"frame ({obj.area} px, {obj.inside:.0%} inside the region, {'moves' if obj.moves else 'still'})")
        else:
            typer.echo(f"region {obj.region}: the whole frame (camera)")


def _is_tracks_file(path: Path) -> bool:
    """Whether ``path`` holds point tracks rather than a moft trajectory: a folder or ``.npy``, or JSON that is
    not a moft trajectory document (an object with ``"regions"``)."""
    import json

    if path.is_dir():
        return True
    if not path.is_file():
        return False
    with open(path, "rb") as handle:
        if handle.read(6) == b"\x93NUMPY":
            return True
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False  # load_trajectory names the problem
    return not (isinstance(data, dict) and "regions" in data)


def _read_tracks_file(path: Path, frames: Optional[int], size: tuple, tracks_size):
    """The point ``Tracks`` of a track file at ``frames`` frames, pixels of ``tracks_size``, else of the output
    frame ``size`` ``(W, H)`` (image-to-video: the image is fitted to it); None while the frame count is unknown."""
    if not frames:
        return None
    size = tuple(tracks_size) if tracks_size is not None else tuple(size)
    return read_tracks(path, num_frames=frames, size=size if all(size) else None)


def _trajectory_before_load(path: Path, frames: Optional[int], check_frames: bool):
    """The trajectory, read and checked against the model folder's frame count before the model
    loads when the folder names one (``moft.json``); else only that the file exists."""

    if not frames:
        if not path.is_file():
            raise UsageError(f"{path}: no such trajectory file")
        return None
    traj = load_trajectory(path, default_frames=frames)
    if check_frames:
        _located(path, lambda: check_trajectory_frames(traj, frames))
    return traj


def _located(path: Path, check):
    """Run ``check()``; a ``ControlError`` about the trajectory is said with the trajectory's path."""

    try:
        return check()
    except ControlError as exc:
        if str(exc).startswith("the trajectory"):
            raise UsageError(f"{path}: {exc}") from None
        raise


def _frames_of(pipe, init, path: Optional[Path]) -> int:
    """The run's video frames: the model's, or those of the init latents (checked against the model)."""

    f = default_video_size(pipe)[0]
    if init is None:
        return f
    try:
        return (int(check_init_latents(init, pipe).shape[1]) - 1) * temporal_scale(pipe) + 1
    except ControlError as exc:
        raise UsageError(f"{path}: {exc}") from None


@app.command()
def evaluate(
    suite: Path = typer.Argument(..., help="suite JSON (see benchmarks/)"),
    out: Path = typer.Option(..., help="REPORT.json; REPORT.md and REPORT.png are written beside it"),
    model: Optional[str] = typer.Option(None, help=MODEL_HELP),
    channels: Optional[Path] = typer.Option(None, help="motion channel file (default: the model's shipped one)"),
    work_dir: Optional[Path] = typer.Option(None, help="per-item results (default: REPORT.parts/); reruns resume"),
    shard: Optional[str] = typer.Option(None, help="K/N: run only every N-th item from the K-th (default: all, or "
                                        "this process's share under accelerate launch)"),
    threads: Optional[int] = typer.Option(None, min=1, help="torch threads per process (default: the cores over "
                                          "the processes; give 1 on a machine shared with other heavy work)"),
    device: str = DEVICE,
    dtype: str = DTYPE,
    offload: str = OFFLOAD,
):
    """Run a suite of controlled generations, score them, write a report (shards under accelerate launch)."""
    with _errors():

        from accelerate import PartialState


        _check_out(out, (".json",))
        _no_clobber({"suite": suite, "channel file": channels},
                    {"--out": out, "the Markdown table": out.with_suffix(".md"),
                     "the figure": out.with_suffix(".png"), "--work-dir": work_dir or out.with_suffix(".parts")})
        spec = with_model_defaults(load_suite(suite), model_record(model))
        ch = _channels(channels, model, required=True)
        if shard is not None:
            try:
                index, count = (int(v) for v in shard.split("/"))
                assert 0 <= index < count
            except (ValueError, AssertionError):
                raise UsageError(f"--shard: expected K/N with 0 <= K < N, got {shard!r}") from None
            state, main = None, True
        else:
            # cpu=True lets torchrun's processes on a CPU-only machine form a gloo group (accelerate
            # only does so when told it is on CPU); on GPUs accelerate launch picks NCCL as usual
            state = PartialState(cpu=not torch.cuda.is_available())
            index, count, main = state.process_index, state.num_processes, state.is_main_process
        torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // count))
        where = _where(device, dtype, offload)
        if state is not None and device == "auto" and state.device.type != "cpu":
            where["device"] = state.device  # accelerate launch: each process on its own accelerator
        pipe = _load(model, where)
        for site in {resolve_settings(pipeline_record(pipe), *suite_layers(spec, s)).guidance.site
                     for s in spec["settings"]}:
            check_channels(pipe, ch, site)  # another model's channel file: one line, before any item runs
        work = work_dir or out.with_suffix(".parts")
        with _progress(f"evaluate [{index}/{count}]") as update:
            run_suite(pipe, spec, work, ch, process_index=index, num_processes=count, progress=update)
        if state is not None:
            state.wait_for_everyone()
        if main:
            rows = collect(spec, work, run_identity(pipe, ch))
            table = summarise(rows)
            report = {"suite": spec, "model": model or "moft-tiny", "channels_digest": ch.digest(),
                      **loading.placement(pipe), "table": table, "rows": rows}
            text = strict_json(report)
            with output_set() as stage:  # report, table and figure, or none of them
                stage(out).write_text(text)
                stage(out.with_suffix(".md")).write_text(f"## {spec['name']}\n\n" + markdown_table(table))
                report_figure(table, stage(out.with_suffix(".png")), title=spec["name"])
            typer.echo(markdown_table(table))


@app.command()
def locate(
    out: Path = typer.Option(..., help="REPORT.json; REPORT.md and REPORT.png are written beside it"),
    model: Optional[str] = typer.Option(None, help=MODEL_HELP),
    sites: Optional[str] = typer.Option(None, help="comma-separated module paths (default: every block output and temporal module)"),
    timesteps: str = typer.Option("100,200,400,700", help="comma-separated timesteps the clips are noised to"),
    clips: int = typer.Option(8, help="clips per direction and kind (8 directions x pans and moving objects)"),
    fractions: str = typer.Option("0.01,0.04,0.1", help="comma-separated channel shares for the concentration measure"),
    budget: Optional[int] = typer.Option(None, help="at most this many denoiser forwards (= clips x timesteps); fewer clips if needed"),
    write_defaults: Optional[Path] = typer.Option(None, help="put the recommended site into FOLDER/moft.json"),
    seed: int = typer.Option(1234, help="clips, noise and folds (held out from fit-channels' pans)"),
    device: str = DEVICE,
    dtype: str = DTYPE,
    offload: str = OFFLOAD,
):
    """Where motion lives: direction decoding from MOFT and raw features over sites x timesteps."""
    with _errors():
        _check_out(out, (".json",))
        site_list = parse_list(sites, str, "--sites") if sites is not None else None
        ts = parse_list(timesteps, int, "--timesteps")
        fr = parse_list(fractions, float, "--fractions")
        folder = model_folder(model)
        plan_locate(timesteps=ts, fractions=fr, clips_per_direction=clips, max_forwards=budget,
                    train_timesteps=folder_train_timesteps(folder))  # every setting checked before the model loads
        if write_defaults is not None:
            check_defaults_folder(write_defaults)
        _not_into_folders({"--out": out, "--out's .md": out.with_suffix(".md"), "--out's .png": out.with_suffix(".png")},
                          {"model folder": folder, "--write-defaults folder": write_defaults},
                          new_files=(DEFAULTS_FILE,))
        pipe = _load(model, _where(device, dtype, offload))
        with _progress("locate") as update:
            rep = run_locate(pipe, sites=site_list, timesteps=ts, fractions=fr, clips_per_direction=clips,
                             max_forwards=budget, seed=seed, model_name=model or "moft-tiny", progress=update)
        rep.save(out)
        rec = rep.recommendation
        typer.echo(f"wrote {out}: {len(rep.sites)} sites x {len(rep.timesteps)} timesteps, {rep.meta['forwards']} "
                   f"forwards; recommended {rec['site']} at t={rec['timestep']}, fraction {rec['fraction']} "
                   f"(MOFT accuracy {rec['moft_accuracy']:.2f}, raw {rec['raw_accuracy']:.2f})")
        if write_defaults is not None:
            for note in save_defaults(write_defaults, rep, out):
                typer.echo(f"note: {note}")
            typer.echo(f"wrote {write_defaults / 'moft.json'}: site {rec['site']}")


def _quiet():
    """Silence library chatter (loading bars, optional-dependency warnings) on the user's terminal."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


def _terminate(signum, frame):
    """SIGTERM unwinds like Ctrl-C (``finally`` blocks remove temporary files), then exits 143."""
    raise SystemExit(128 + signum)


def main():
    """Console-script entry point: exit 0 on success, 2 with one line ``error: ...`` on bad input
    (moft's and typer's own errors), 130 on Ctrl-C, 143 on SIGTERM; a bug keeps its traceback (1)."""
    _quiet()
    signal.signal(signal.SIGTERM, _terminate)
    args = sys.argv[1:] or ["--help"]  # a bare `moft` shows the help
    try:
        code = app(args, prog_name="moft", standalone_mode=False)
    except typer.Abort:
        typer.echo("interrupted", err=True)
        code = 130
    except typer.TyperException as exc:  # typer's own: a bad option value, a missing option, an unknown command
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        lines = str(exc.format_message() if hasattr(exc, "format_message") else exc).strip().splitlines()
        typer.echo(f"error: {lines[0] if lines else type(exc).__name__}{hint}", err=True)
        code = getattr(exc, "exit_code", 2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    sys.exit(main())
