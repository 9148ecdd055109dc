"""The control settings a model runs with when the command line gives none (``moft info --model M``).

Example:
    >>> from moft.models.pipeline import model_record
    >>> print("\\n".join(control_defaults_lines(model_record())))             # moft-tiny's moft.json
    control defaults (any `moft control` option overrides them):
      target        drag (the unguided video's regions dragged along the path, inverted)
      method        cut-and-drag, no gradients; from the drag proxy at step 3, released at step 24; the background kept (drags; a reference clip or points: gradient guidance, the lines below)
      reference     a clip's motion copied by its inverted MOFT as the target (transfer target)
      loss          per_position, distance cosine, weight 6 for one region / 8 for several
      optimiser     adam, 4 iterations per guided step, step size 0.15
      guided steps  3:12 of the 25 sampling steps (--steps N: the same share of N)
      CFG           4
      prompt        'a red disk standing still'
      shared K/V    off; gradient mask all
      point tracks  each point drags the object under it: cut-and-drag, no gradients; from the drag proxy at step 3, released at step 24 (--points paper: Eq. 9)
      frames        8
"""

from __future__ import annotations

from ..method.settings import resolve_settings
from ..models.record import ModelRecord

TARGETS = {"drag": "the unguided video's regions dragged along the path, inverted",
           "curves": "region-mean curves synthesized from the channels' response (the paper's)"}


def _method_line(g, note: bool = False) -> str:
    """How a drag from a trajectory runs: gradient guidance, or the keep levers (``moft.method.keep``); ``note``: say
    which runs the levers are for (drags, and reference clips copied by dragging: ``transfer="drag"``)."""
    if g.method == "gradient" and g.start == "noise" and g.keep == "off":
        return "gradient guidance (the lines below)"
    parts = ["cut-and-drag, no gradients" if g.method == "cut-drag" else "gradient guidance"]
    if g.start == "proxy":
        cut = f" (cut from the unguided video's frame {g.drag_frame})" if g.drag_frame else ""
        parts.append(f"from the drag proxy{cut} at step {g.steps[0]}" + (f", released at step {g.release}" if g.release else ""))
    elif g.start == "source":
        parts.append(f"from the unguided video at step {g.steps[0]}")
    if g.keep != "off":
        parts.append("the background kept" + (f" until step {g.keep_until}" if g.keep_until is not None else ""))
    others = "points" if g.transfer == "drag" else "a reference clip or points"
    told = f" (drags{' and reference clips' if g.transfer == 'drag' else ''}; {others}: gradient guidance, the lines below)"
    return "; ".join(parts) + (told if note else "")


def control_defaults_lines(record: ModelRecord, steps: int = 25) -> list[str]:
    """Lines naming each control setting in force for a model folder's ``moft.json`` record, else the
    official one.

    Args:
        record: ``moft.models.pipeline.model_record(model)`` (or ``pipeline_record(pipe)``).
        steps: the sampling steps the guided-step range is read against (``moft control --steps``'s default).
    """
    run = resolve_settings(record)
    g, cfg, kind, prompt = run.guidance, run.guidance_scale, run.target_kind, run.prompt
    weight = f"weight {g.weight:g}" if g.weight is not None else "weight 6 for one region / 8 for several"
    size = g.step_size if g.step_size_end is None else f"{g.step_size:g} -> {g.step_size_end:g}"
    lines = [
        "control defaults (any `moft control` option overrides them):",
        f"  target        {kind}" + (f" ({TARGETS[kind]})" if kind in TARGETS else ""),
        f"  method        {_method_line(g, note=True)}",
        "  reference     a clip's motion " + ("measured per region and dragged (transfer drag)" if g.transfer == "drag"
                                               else "copied by its inverted MOFT as the target (transfer target)"),
        f"  loss          {g.loss}, distance {g.distance}, {weight}",
        f"  optimiser     {g.optimizer}, {g.iterations} iterations per guided step, step size {size}",
        f"  guided steps  {g.steps[0]}:{g.steps[1]} of the {steps} sampling steps (--steps N: the same share of N)",
        f"  CFG           {cfg:g}" if isinstance(cfg, (int, float)) else f"  CFG           {cfg}",
        f"  prompt        {prompt!r}",
        f"  shared K/V    {'on' if g.shared_kv else 'off'}; gradient mask {g.grad_mask}",
    ]
    t = resolve_settings(record, tracks=True).guidance  # a track file without --points
    under = "the object under it" if t.point_region == "segment" else "its disk"
    lines.append(f"  point tracks  each point drags {under}: {_method_line(t)} (--points paper: Eq. 9)")
    if g.site:
        lines.append(f"  site          {g.site}")
    if record.frames:
        lines.append(f"  frames        {record.frames}")
    return lines


MAX_LISTED_WORDS = 200  # a word-level vocabulary this small is listed in full; a real tokenizer's is not


def vocabulary_line(tokenizer) -> str | None:
    """``vocabulary  N words: ...`` for a small word-level tokenizer (the shipped models'), else None.

    Example:
        >>> from moft.models.tiny.tokenizer import build_tokenizer
        >>> vocabulary_line(build_tokenizer(["red", "disk", "left"]))
        'vocabulary    3 words: disk left red (any other word reads as <unk>)'
    """
    vocab = tokenizer.get_vocab() if tokenizer is not None and hasattr(tokenizer, "get_vocab") else {}
    words = sorted(w for w in vocab if not (w.startswith("<") and w.endswith(">")))
    if not words or len(vocab) > MAX_LISTED_WORDS:
        return None
    return f"vocabulary    {len(words)} words: {' '.join(words)} (any other word reads as <unk>)"
