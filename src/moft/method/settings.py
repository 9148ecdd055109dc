"""What a run uses: the guidance settings (``GuidanceConfig``) and one resolution of every setting.

Example:
    >>> from moft.models.pipeline import model_record
    >>> s = resolve_settings(model_record("moft-tiny"), {"iterations": 3}, {"guidance_scale": 6.0})
    >>> s.guidance.iterations, s.guidance.optimizer, s.guidance_scale, s.target_kind
    (3, 'adam', 6.0, 'drag')
    >>> resolve_settings().guidance_scale, resolve_settings().target_kind       # moft's own defaults
    (7.5, 'curves')

A setting takes, in order (later wins): moft's default (``GuidanceConfig``'s field defaults, the
official CFG scale ``OFFICIAL_CFG``, ``curves`` targets, an empty prompt) -> the model folder's
``moft.json`` (``moft.models.record.ModelRecord``) -> each layer given (a suite's top-level
settings, then its row, in ``moft evaluate``) -> the command-line flags or the Python API's
arguments. ``resolve_settings`` is that order; the CLI, the API (``moft.control``) and
``moft evaluate`` all call it. A layer is a dict of ``GuidanceConfig`` fields plus
``guidance_scale``, ``target_kind`` and ``prompt``; a key present wins (None included: leave a key
out to keep the value below it).

A model folder's drag levers (``DRAG_LEVERS``: a gradient-free cut-and-drag start, the background
kept) were chosen on drags from trajectories: they apply when the run's target is ``drag`` and no
point loss is asked for. Any other run (a reference clip, curves, ``points``) takes moft's defaults
for those fields unless a layer sets them, so a model's cut-drag default never turns a motion
transfer into an unguided run. A reference clip with ``transfer="drag"`` is a drag: its measured
motion is the trajectory (``moft.method.transfer``), so the drag levers apply. A ``start`` other
than ``proxy`` given over a folder's proxy start also drops the folder's ``release`` and ``method``
(both need the proxy): ``--start-from noise`` is plain gradient guidance, with whatever ``keep``
the folder or the caller says.

Step indices (``STEP_FIELDS``: the guided steps, ``release``, ``keep_until``) that moft's defaults and the
model folders give were chosen on 25-step schedules (``TUNED_STEPS``); a front-door run of another length
(``moft control --steps``, ``moft.control(steps=)``) gets them scaled to the same share of its schedule
(``scale_step_fields``). Indices a layer sets are taken as they are.

``GuidanceConfig`` owns every check of its fields (types, choices, ranges; ``__post_init__``),
and each field's metadata says what it accepts and means: the suite schema and the CLI's help
read it (``GUIDANCE_FIELDS``) instead of copying it.
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
from dataclasses import asdict, dataclass, field, fields

from ..models.pipeline import OFFICIAL_CFG
from ..models.record import ModelRecord
from .points import POINT_MODES, rescale_step
from .targets import TARGET_KINDS

MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed's range
MAX_STEPS = 10_000  # any schedule longer than this is a typo; a model's own bound is checked once it loads
OPTIMIZERS = ("sgd", "normalized", "adam")
DISTANCES = ("l2", "cosine")
POINT_REGIONS = ("disk", "segment")  # what a point region drags (moft.method.drag.object_regions)
KEEPS = ("off", "latents")  # the keep levers (moft.method.keep)
STARTS = ("noise", "source", "proxy")
METHODS = ("gradient", "cut-drag")
TRANSFERS = ("target", "drag")  # how a reference clip's motion is copied (moft.method.transfer)
RUN_KEYS = ("guidance_scale", "target_kind", "prompt")
# levers of a drag from a trajectory (moft.method.keep): a model folder's values apply to that kind of run only
DRAG_LEVERS = ("method", "start", "release", "keep", "keep_until")
# step indices (GuidanceConfig fields) that moft's defaults and the model folders give for a TUNED_STEPS-step
# schedule (every suite and tuning run samples 25, the official schedule); a run of S steps that does not set one
# gets it scaled by S / TUNED_STEPS (``scale_step_fields``), as Eq. 9's thresholds scale (``paper_schedule``)
TUNED_STEPS = 25
STEP_FIELDS = ("steps", "release", "keep_until")


class SettingsError(ValueError):
    """A setting that cannot work (one line); the base of ``SamplerError`` and ``ControlError``."""


class SamplerError(SettingsError):
    """Sampling or guidance settings that cannot run (one-line message)."""


class FieldError(SettingsError):
    """A setting that cannot work; ``field`` names it and ``problem`` says why (a front door may name
    the field its own way: the CLI's ``--flag``, a suite's ``settings[i].field``)."""

    def __init__(self, name: str, problem: str):
        super().__init__(f"{name} {problem}")
        self.field, self.problem = name, problem


class GuidanceError(FieldError, SamplerError):
    """A ``GuidanceConfig`` field that cannot work."""


def _kind(value) -> str:
    return {dict: "an object", list: "a list", tuple: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number" if isinstance(value, numbers.Number) else type(value).__name__)


def _show(value) -> str:
    try:
        return f"{_kind(value)} {json.dumps(value)[:40]}"
    except (TypeError, ValueError):
        return f"{_kind(value)} {value!r:.40}"


def check_number(name: str, value, *, lo: float | None = None, hi: float | None = None, above: bool = False,
                 error: type = SettingsError) -> float:
    """``value`` as a finite float in ``[lo, hi]`` (``(lo, hi]`` with ``above``), else ``error`` (one line).

    Example:
        >>> check_number("gain", 2, lo=0, hi=100, above=True)
        2.0
        >>> check_number("gain", 0.0, lo=0, above=True)
        Traceback (most recent call last):
        moft.method.settings.SettingsError: gain must be > 0, got 0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise error(f"{name} must be a number, got {_show(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise error(f"{name} must be a finite number, got {value}")
    if lo is not None and (value <= lo if above else value < lo):
        raise error(f"{name} must be {'>' if above else '>='} {lo:g}, got {value:g}")
    if hi is not None and value > hi:
        raise error(f"{name} must be <= {hi:g}, got {value:g}")
    return value


def check_integer(name: str, value, lo: int, hi: int | None = None, error: type = SettingsError) -> int:
    """``value`` as an int in ``[lo, hi]``, else ``error`` (one line; booleans and floats are refused).

    Example:
        >>> check_integer("steps", 0, 1)
        Traceback (most recent call last):
        moft.method.settings.SettingsError: steps must be >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise error(f"{name} must be an integer, got {_show(value)}")
    if value < lo or (hi is not None and value > hi):
        raise error(f"{name} must be {f'in {lo}..{hi}' if hi is not None else f'>= {lo}'}, got {value}")
    return int(value)


def _g(default, types: tuple, accepts: str, help: str, choices: tuple | None = None):
    """A ``GuidanceConfig`` field: JSON types it takes, how to say them, its meaning, its choices."""
    return field(default=default, metadata={"types": types, "accepts": accepts, "help": help, "choices": choices})


_INT, _REAL, _STR, _BOOL, _NONE = (numbers.Integral,), (numbers.Real,), (str,), (bool,), (type(None),)


@dataclass
class GuidanceConfig:
    """Settings of MOFT guidance (defaults: the official code). Each field's ``metadata`` holds what
    it accepts (``types``, ``accepts``, ``choices``) and means (``help``).

    Example:
        >>> GuidanceConfig(iterations=3).iterations
        3
        >>> GuidanceConfig(optimizer="rmsprop")
        Traceback (most recent call last):
        moft.method.settings.GuidanceError: optimizer must be one of sgd, normalized, adam, got a string "rmsprop"

    Attributes:
        steps: ``(start, end)`` guided step indices, end exclusive (official ``[3, 12]`` of 25).
        iterations: gradient iterations per guided step (official 2).
        step_size: ``eta`` in ``z <- z - eta * grad`` (official 0.5).
        weight: loss weight; None picks 6 for one region, 8 for several (official demos).
        loss: ``"region_mse"`` (official: MSE of region-mean curves) or ``"per_position"``
            (paper Eq. 3: mean over region positions of the L2 distance).
        shared_kv: share spatial self-attention K/V from the unguided branch (official: on); only
            where the architecture has spatial self-attention (U-Nets; not DiTs' full 3-D attention).
        grad_mask: ``"all"`` (zero the gradient outside the regions on every frame, official),
            ``"first:N"`` (only on the first N frames, as the paper's text), or ``"off"``.
        early_exit: stop the loss forward after the captured block.
        checkpointing: enable the denoiser's gradient checkpointing during guidance.
        autocast: ``None``, ``"bfloat16"`` or ``"float16"`` for the loss forward.
        site: capture site (default: the model folder's, else the architecture's ``up_blocks.1``).
        loss_batch: ``"cond"`` (the loss forward runs on the conditional prompt only) or ``"cfg"``
            (on the whole CFG batch, as the official code does; for benchmarks).
        optimizer: how a gradient becomes a latent update: ``"sgd"`` (``z <- z - eta * grad``,
            official), ``"normalized"`` (``z <- z - eta * grad / |grad|``: a step of length
            ``eta`` whatever the loss scale) or ``"adam"`` (Adam with ``lr = eta``, betas
            (0.9, 0.999), its moments restarted at every guided step; SMM, DiTFlow, FastVMT).
        step_size_end: the step size at the last guided step, ``step_size`` at the first and
            linear in between (a schedule over the guided steps); None keeps it constant.
        distance: ``"l2"`` (paper Eq. 3, official) or ``"cosine"`` (``1 - cos`` between the
            generated and the target MOFT, per position or between region-mean curves; DiTFlow's
            MOFT port): insensitive to the feature's scale.
        grad_every: a full gradient every ``grad_every``-th iteration; the iterations between
            reuse the last one (FastVMT recomputes every third); 1 = every iteration.
        target_mode: how a drag or reference target is read from its video (``control``,
            ``moft evaluate``): ``"inversion"`` (DDIM inversion, the paper) or ``"noise"`` (the
            video forward-noised to the timestep, one denoiser forward; FastVMT, FlowMotion).
        target_timesteps: ``"fixed"`` (one target at t = 200, the official step 5 of 25) or
            ``"guided"`` (one target at each guided step's timestep, compared at that step).
        points: point drag (``sample(..., points=)``): ``"off"`` (the MOFT loss at ``steps``,
            points unused), ``"paper"`` (Eq. 9: MOFT alone at the earliest steps, then MOFT + the
            point loss, the point loss alone, nothing at the last; ``steps`` unused) or ``"dift"``
            (the point loss alone at Eq. 9's point steps); ``moft.method.points.point_schedule``.
        point_weight: weight of the point loss (Eq. 9's ``w_p``; not given in the paper).
        point_site: where the point loss reads its features (default: the model folder's
            ``"point_site"``, measured by ``scripts/point_sites.py``, else ``site``).
        point_radius: the point loss's neighbourhood radius in point-site feature cells, and the
            point gradient mask's radius in latent cells (plus one).
        point_region: what a drag proxy (a drag target's, a cut-and-drag start's) moves for a point region:
            ``"disk"`` (the disks of its ``radius`` around its points) or ``"segment"`` (the object under its
            points, grown on the frame being dragged; ``moft.method.drag.object_regions``).
        drag_frame: the frame of the unguided source a drag proxy is cut from (its regions, and the object a
            point is grown into, are taken there and dragged from their paths' first positions); 0: frame 0. On
            image-to-video every frame is the image.
        keep: ``"off"`` or ``"latents"`` (outside the swept region, the latents are the unguided
            source's after every step before ``keep_until``; ``moft.method.keep``).
        keep_until: the step index where the background is released (None: kept to the end).
        start: ``"noise"`` (step 0), ``"source"`` (the source's latents at the first guided step)
            or ``"proxy"`` (the drag proxy noised to the first guided step; Time-to-Move).
        release: with ``start="proxy"``, the region follows the noised proxy until this step
            index (the "dual clock"); None: only the start.
        method: ``"gradient"`` (MOFT guidance) or ``"cut-drag"`` (the proxy start alone, no
            gradient iterations; needs ``start="proxy"``).
        transfer: how a reference clip's motion is copied: ``"target"`` (its inverted MOFT is the
            target, the paper's) or ``"drag"`` (each region's motion in the clip, measured by block
            matching, becomes its trajectory, dragged with the drag levers; ``moft.method.transfer``).
    """

    steps: tuple[int, int] = _g((3, 12), (tuple, list), "[start, end] (two integers, 0 <= start <= end)",
                                "guided step indices START:END, end exclusive")
    iterations: int = _g(2, _INT, "an integer >= 0", "gradient iterations per guided step; 0: unguided")
    step_size: float = _g(0.5, _REAL, "a finite number > 0", "latent update step")
    weight: float | None = _g(None, _REAL + _NONE, "a finite number > 0 or null",
                              "loss weight (none: 6 for one region, 8 for several)")
    loss: str = _g("region_mse", _STR, "a string", "region_mse (official) or per_position (paper Eq. 3)",
                   ("region_mse", "per_position"))
    shared_kv: bool = _g(True, _BOOL, "true or false", "share spatial K/V from the unguided branch")
    grad_mask: str = _g("all", _STR, "'all', 'off' or 'first:N'", "all, first:N or off")
    early_exit: bool = _g(True, _BOOL, "true or false", "stop the loss forward after the captured block")
    checkpointing: bool = _g(False, _BOOL, "true or false", "gradient checkpointing during guidance")
    autocast: str | None = _g(None, _STR + _NONE, "a string or null", "autocast dtype of the loss forward",
                              (None, "bfloat16", "float16"))
    site: str | None = _g(None, _STR + _NONE, "a string or null", "capture site")
    loss_batch: str = _g("cond", _STR, "a string", "cond or cfg (the loss forward's batch)", ("cond", "cfg"))
    optimizer: str = _g("sgd", _STR, "a string", "sgd (official), normalized (steps of length --step-size) or "
                        "adam (learning rate --step-size)", OPTIMIZERS)
    step_size_end: float | None = _g(None, _REAL + _NONE, "a finite number > 0 or null",
                                     "step size at the last guided step, linear from --step-size")
    distance: str = _g("l2", _STR, "a string", "l2 (paper) or cosine (DiTFlow's) between generated and target "
                       "MOFT", DISTANCES)
    grad_every: int = _g(1, _INT, "an integer >= 1", "a full gradient every N-th iteration, the others reuse it")
    target_mode: str = _g("inversion", _STR, "a string", "inversion (paper) or noise (one forward of the video "
                          "noised to the timestep): how a drag or reference target is read", ("inversion", "noise"))
    target_timesteps: str = _g("fixed", _STR, "a string", "fixed (one target at t = 200) or guided (one at each "
                               "guided step's timestep)", ("fixed", "guided"))
    points: str = _g("off", _STR, "a string", "point drag: paper (Eq. 9: MOFT, then the point loss), dift (the "
                     "point loss alone) or off", POINT_MODES)
    point_weight: float = _g(1.0, _REAL, "a finite number >= 0", "weight of the point loss")
    point_site: str | None = _g(None, _STR + _NONE, "a string or null", "capture site of the point loss")
    point_radius: float = _g(1.0, _REAL, "a finite number >= 0", "the point loss's neighbourhood radius (feature cells)")
    point_region: str = _g("disk", _STR, "a string", "what a drag moves for a point: disk (its radius) or segment "
                           "(the object under it, grown by colour on the frame being dragged)", POINT_REGIONS)
    drag_frame: int = _g(0, _INT, "an integer >= 0", "the frame of the unguided video a drag proxy is cut from "
                         "(0: frame 0)")
    keep: str = _g("off", _STR, "a string", "off or latents (outside the region the trajectory sweeps, the latents "
                   "are the unguided video's after every step)", KEEPS)
    keep_until: int | None = _g(None, _INT + _NONE, "an integer >= 0 or null", "with keep latents: the step where "
                                "the background is released (none: kept to the end)")
    start: str = _g("noise", _STR, "a string", "noise (step 0), source (the unguided video's latents at the first "
                    "guided step: the same video, fewer steps) or proxy (the drag proxy noised to the first guided "
                    "step; Time-to-Move)", STARTS)
    release: int | None = _g(None, _INT + _NONE, "an integer >= 0 or null", "with start proxy: the region follows "
                             "the noised proxy until this step (the dual clock; none: only the start)")
    method: str = _g("gradient", _STR, "a string", "gradient (MOFT guidance) or cut-drag (the proxy start alone, no "
                     "gradients; needs start proxy)", METHODS)
    transfer: str = _g("target", _STR, "a string", "how a reference clip's motion is copied: target (its MOFT is the "
                       "target, the paper's) or drag (each region's motion in the clip becomes its trajectory, dragged "
                       "with the drag levers)", TRANSFERS)

    def __post_init__(self):
        for f in fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if not isinstance(value, meta["types"]) or (isinstance(value, bool) and bool not in meta["types"]):
                raise GuidanceError(f.name, f"must be {meta['accepts']}, got {_show(value)}")
            if isinstance(value, float) and not math.isfinite(value):
                raise GuidanceError(f.name, f"must be {meta['accepts']}, got {value}")
            if meta["choices"] is not None and value not in meta["choices"]:
                named = ", ".join(str(c) for c in meta["choices"] if c is not None)
                raise GuidanceError(f.name, f"must be one of {named}{' or null' if None in meta['choices'] else ''}, "
                                            f"got {_show(value)}")
        steps = self.steps
        if (len(steps) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in steps)
                or not 0 <= steps[0] <= steps[1]):
            raise GuidanceError("steps", f"must be {fields(self)[0].metadata['accepts']}, got {_show(list(steps))}")
        self.steps = (int(steps[0]), int(steps[1]))
        for name, lo in (("iterations", 0), ("grad_every", 1), ("keep_until", 0), ("release", 0), ("drag_frame", 0)):
            value = getattr(self, name)
            if value is not None and value < lo:
                raise GuidanceError(name, f"must be an integer >= {lo}, got {value}")
        for name in ("point_weight", "point_radius"):
            if getattr(self, name) < 0:
                raise GuidanceError(name, f"must be >= 0, got {getattr(self, name):g}")
        for name in ("step_size", "weight", "step_size_end"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise GuidanceError(name, f"must be > 0, got {getattr(self, name):g}")
        if not (self.grad_mask in ("all", "off") or (self.grad_mask.startswith("first:")
                                                    and self.grad_mask[6:].isdigit())):
            raise GuidanceError("grad_mask", f"must be 'all', 'off' or 'first:N', got {self.grad_mask!r}")
        for name, off in (("method", "gradient"), ("release", None)):
            if getattr(self, name) != off and self.start != "proxy":
                raise GuidanceError(name, f"{getattr(self, name)!r} needs start 'proxy' (the drag proxy), got start "
                                          f"{self.start!r}")

    @classmethod
    def from_dict(cls, data: dict) -> "GuidanceConfig":
        """A config from JSON-like fields (``steps`` as a list); an unknown field is a ``GuidanceError``
        with the nearest known name.

        Example:
            >>> GuidanceConfig.from_dict({"steps": [1, 4], "stepsize": 0.2})
            Traceback (most recent call last):
            moft.method.settings.GuidanceError: stepsize is not a guidance setting (did you mean 'step_size'?)
        """
        for key in data:
            if key not in GUIDANCE_FIELDS:
                near = difflib.get_close_matches(str(key), GUIDANCE_FIELDS, n=1)
                raise GuidanceError(str(key), "is not a guidance setting"
                                    + (f" (did you mean {near[0]!r}?)" if near else ""))
        return cls(**data)

    def check_schedule(self, steps: int) -> None:
        """Raise ``GuidanceError`` unless guidance that iterates meets the ``steps``-step schedule.

        Example:
            >>> GuidanceConfig(steps=(3, 12)).check_schedule(3)
            Traceback (most recent call last):
            moft.method.settings.GuidanceError: steps 3:12 run no step of the 3-step schedule (0..2); guide steps within it or sample more steps
        """
        start, end = self.steps
        if self.iterations > 0 and start >= min(end, steps):
            raise GuidanceError("steps", f"{start}:{end} run no step of the {steps}-step schedule (0..{steps - 1}); "
                                         f"guide steps within it or sample more steps")

    def check_frames(self, frames: int) -> None:
        """Raise ``GuidanceError`` unless ``drag_frame`` is a frame of a ``frames``-frame video.

        Example:
            >>> GuidanceConfig(drag_frame=9).check_frames(9)
            Traceback (most recent call last):
            moft.method.settings.GuidanceError: drag_frame 9 is not a frame of the 9 made (0..8)
        """
        if self.drag_frame >= frames:
            raise GuidanceError("drag_frame", f"{self.drag_frame} is not a frame of the {frames} made (0..{frames - 1})")

    @property
    def iterates(self) -> bool:
        """Whether guidance runs gradient iterations (``iterations > 0``, not ``method="cut-drag"``).

        Example:
            >>> GuidanceConfig().iterates, GuidanceConfig(start="proxy", method="cut-drag").iterates
            (True, False)
        """
        return self.method == "gradient" and self.iterations > 0

    @property
    def needs_source(self) -> bool:
        """Whether a keep lever needs the unguided source's latents (``moft.method.keep``)."""
        return self.keep != "off" or self.start != "noise"

    def resolved_weight(self, regions: int) -> float:
        return self.weight if self.weight is not None else (6.0 if regions == 1 else 8.0)

    def step_size_at(self, i: int) -> float:
        """The step size at denoising step ``i``: ``step_size`` at the first guided step, linear to
        ``step_size_end`` at the last (``steps[1] - 1``).

        Example:
            >>> g = GuidanceConfig(steps=(3, 12), step_size=2.0, step_size_end=0.5)
            >>> [g.step_size_at(i) for i in (3, 7, 11)]
            [2.0, 1.25, 0.5]
        """
        start, end = self.steps
        if self.step_size_end is None or end - 1 <= start:
            return self.step_size
        frac = (i - start) / (end - 1 - start)
        return self.step_size + frac * (self.step_size_end - self.step_size)


GUIDANCE_FIELDS: dict = {f.name: f.metadata for f in fields(GuidanceConfig)}  # the schema the CLI and suites read


def config_dict(g: GuidanceConfig) -> dict:
    """JSON-ready settings."""
    return asdict(g)


@dataclass(frozen=True)
class RunSettings:
    """The settings one run uses, resolved (``resolve_settings``).

    Attributes:
        guidance: the ``GuidanceConfig``.
        guidance_scale: the CFG scale.
        target_kind: how a trajectory becomes a target (``curves`` or ``drag``).
        prompt: the prompt when none is given.
    """

    guidance: GuidanceConfig
    guidance_scale: float
    target_kind: str
    prompt: str

    def drag_target(self, *, from_trajectory: bool) -> bool:
        """Whether the run's target is a drag target (a source dragged along the trajectory and inverted):
        guidance iterates toward a target made from a trajectory (not a reference clip or a ready target),
        of kind ``drag``, and not the point loss alone (``points="dift"`` has no target).

        Example:
            >>> run = resolve_settings(None, {"target_kind": "drag"})
            >>> run.drag_target(from_trajectory=True), run.drag_target(from_trajectory=False)
            (True, False)
        """
        g = self.guidance
        return from_trajectory and g.iterates and self.target_kind == "drag" and g.points != "dift"

    def drags_image(self, *, from_trajectory: bool) -> bool:
        """On an image-to-video model, whether the run drags its image, held still (Time-to-Move's recipe): the
        image is the proxy of a drag target or of the cut-and-drag start, so no unguided source is needed for it.

        Example:
            >>> cut = resolve_settings(None, {"method": "cut-drag", "start": "proxy", "release": 20})
            >>> cut.drags_image(from_trajectory=True), resolve_settings(None).drags_image(from_trajectory=False)
            (True, False)
        """
        return self.drag_target(from_trajectory=from_trajectory) or self.guidance.start == "proxy"


def record_layer(record: ModelRecord | None) -> dict:
    """The settings a model folder's record gives (its ``guidance`` entry, ``site``, CFG scale, target, prompt)."""
    if record is None:
        return {}
    layer = dict(record.guidance)
    if layer.get("site") is None and record.site:
        layer["site"] = record.site  # the folder's capture site (moft locate --write-defaults)
    if layer.get("point_site") is None and record.point_site:
        layer["point_site"] = record.point_site  # the folder's point-feature site (scripts/point_sites.py)
    given = {"guidance_scale": record.guidance_scale, "target_kind": record.target, "prompt": record.prompt}
    return dict(layer, **{k: v for k, v in given.items() if v is not None})


# point tracks (a track file, ``Tracks``) without guidance given: the object under each point dragged along its track
# (``moft.method.drag.object_regions``) with the model folder's drag levers (a cut-and-drag start on the shipped models);
# chosen on benchmarks/tune_point_drag.json over Eq. 9's point loss (``points="paper"``, which tore the object in every
# tuning request). A folder's ``moft.json`` ``"tracks"`` adds what its own tuning chose (``track_settings``)
TRACK_SETTINGS = {"point_region": "segment"}


def track_settings(record: ModelRecord | None) -> dict:
    """The ``GuidanceConfig`` fields a point-track run takes over the model's defaults when no guidance is given:
    ``TRACK_SETTINGS``, then the folder's ``moft.json`` ``"tracks"`` entry.

    Example:
        >>> from moft.models.pipeline import model_record
        >>> track_settings(None), track_settings(model_record("moft-tiny"))["keep"]
        ({'point_region': 'segment'}, 'off')
    """
    return dict(TRACK_SETTINGS, **((record.tracks or {}) if record is not None else {}))


def scale_step_fields(values: dict, steps: int) -> dict:
    """``values`` (``GuidanceConfig`` fields) with their step indices (``STEP_FIELDS``) moved from a
    ``TUNED_STEPS``-step schedule to a ``steps``-step one: the same share of the schedule, a guided span of at
    least one step that starts within it; None, 0 and other fields as they are.

    Example:
        >>> scale_step_fields({"steps": (16, 17), "release": 24, "keep_until": None, "iterations": 4}, 10)
        {'steps': (6, 7), 'release': 10, 'keep_until': None, 'iterations': 4}
        >>> scale_step_fields({"steps": (3, 12), "release": 20}, 50)
        {'steps': (6, 24), 'release': 40}
    """
    out = dict(values)
    if "steps" in out:
        start, end = out["steps"]
        new_start = min(rescale_step(start, steps, TUNED_STEPS), steps - 1)
        new_end = max(rescale_step(end, steps, TUNED_STEPS), new_start + 1) if end > start else new_start
        out["steps"] = (new_start, new_end)
    for name in ("release", "keep_until"):
        if out.get(name):
            out[name] = rescale_step(out[name], steps, TUNED_STEPS)
    return out


def resolve_settings(record: ModelRecord | None = None, *layers: dict,
                     guidance: GuidanceConfig | None = None, drags: bool = True, reference: bool = False,
                     steps: int | None = None, tracks: bool = False) -> RunSettings:
    """One resolution of a run's settings: defaults -> ``record`` -> each layer in turn (see the module docstring).

    Args:
        record: the model folder's record (``pipeline_record`` or ``model_record``), or None.
        layers: dicts of ``GuidanceConfig`` fields and ``guidance_scale``, ``target_kind``, ``prompt``
            (a suite's settings, a suite row, the command line's flags that were given).
        guidance: a whole ``GuidanceConfig`` that replaces the resolved guidance fields (the API's ``guidance=``).
        drags: whether the run's target would come from a trajectory (False with a ready target): the record's
            ``DRAG_LEVERS`` apply only to such runs (see the module docstring).
        reference: the run copies a reference clip's motion: with ``transfer="drag"`` the clip's motion becomes
            the trajectory that is dragged (the drag levers apply), else the clip's MOFT is the target (they do not).
        steps: the run's sampling steps, when its step indices that no layer sets (moft's defaults, the
            record's) are to be scaled to them from the ``TUNED_STEPS`` they were chosen on (the front doors);
            None takes every index as it is (a suite's, whose rows say their schedule).
        tracks: the run drags point tracks with no point loss asked for: the record's ``track_settings`` join
            its layer (they are the folder's, so scaled with it).

    Raises:
        SettingsError: a bad value or unknown key, naming the ``moft.json`` when the record's is bad.

    Example:
        >>> from moft.models.pipeline import model_record
        >>> resolve_settings(model_record("moft-tiny-wan")).guidance.method          # its drag default
        'cut-drag'
        >>> resolve_settings(model_record("moft-tiny-wan"), reference=True).guidance.method   # a reference clip
        'gradient'
        >>> resolve_settings(model_record("moft-tiny-wan"), {"transfer": "drag"}, reference=True).guidance.method
        'cut-drag'
        >>> resolve_settings(model_record("moft-tiny-wan"), {"points": "paper"}).guidance.start
        'noise'
        >>> resolve_settings(model_record("moft-tiny"), steps=50).guidance.steps        # its 3:12 of 25
        (6, 24)
    """
    track = track_settings(record) if tracks else {}
    base = dict(record_layer(record), **track)
    try:
        GuidanceConfig.from_dict({k: v for k, v in base.items() if k not in RUN_KEYS})
    except SettingsError as exc:
        raise SettingsError(f"{record.source or 'moft.json'}: guidance: {exc}") from None
    merged = dict(base)
    for layer in layers:
        merged.update(layer)
    given = {k for layer in layers for k in layer}
    chosen = given | set(track)  # the folder's track levers were chosen for this kind of run: none is dropped
    # a reference clip is dragged only when its motion is copied as a trajectory (transfer "drag")
    drags = drags and (not reference or merged.get("transfer", GuidanceConfig.transfer) == "drag")
    if not drags or merged.get("target_kind") != "drag" or merged.get("points", "off") != "off":  # not what they were chosen on
        for name in DRAG_LEVERS:
            if name in base and name not in chosen:
                merged[name] = GuidanceConfig.__dataclass_fields__[name].default
    if merged.get("start") != "proxy":  # a start given without the proxy: the folder's proxy-only levers go with it
        for name in ("release", "method"):
            if name in base and name not in chosen:
                merged[name] = GuidanceConfig.__dataclass_fields__[name].default
    values = {k: v for k, v in merged.items() if k not in RUN_KEYS}
    # the indices no layer set are for TUNED_STEPS steps (a steps value out of range is the caller's check to refuse)
    if isinstance(steps, int) and not isinstance(steps, bool) and 1 <= steps <= MAX_STEPS and steps != TUNED_STEPS:
        defaults = {name: GuidanceConfig.__dataclass_fields__[name].default for name in STEP_FIELDS}
        scaled = scale_step_fields({name: values.get(name, defaults[name]) for name in STEP_FIELDS}, steps)
        values.update({name: v for name, v in scaled.items() if name not in given})
    g = guidance if guidance is not None else GuidanceConfig.from_dict(values)
    scale = merged.get("guidance_scale")
    try:
        scale = check_number("guidance_scale", OFFICIAL_CFG if scale is None else scale, lo=0)
    except SettingsError as exc:
        raise FieldError("guidance_scale", str(exc).removeprefix("guidance_scale ")) from None
    kind = merged.get("target_kind") or "curves"
    if kind not in TARGET_KINDS:
        raise FieldError("target_kind", f"must be one of {', '.join(TARGET_KINDS)}, got {kind!r}")
    prompt = merged.get("prompt")
    return RunSettings(g, scale, kind, "" if prompt is None else str(prompt))
