"""One table per suite with both shipped organisms side by side: moft-tiny (U-Net) and moft-tiny-wan (DiT).

Reads the reports `moft evaluate` wrote for each model (docs/results/NAME.json for moft-tiny,
docs/results/moft-tiny-wan/NAME.json for moft-tiny-wan) and writes docs/results/organisms.md, where each cell is
"U-Net / DiT", and docs/results/organisms_summary.md (the README's table: architecture, size, training cost, the
quality bars, where motion lives, control). A suite is shown only when both reports ran the same suite file (same requests, prompts, seeds
and settings); otherwise the table says which report is missing or differs. scripts/results_tables.py copies the
page into docs/results.md.

Usage:
    moft evaluate benchmarks/table1_synthesis.json --model moft-tiny-wan --out docs/results/moft-tiny-wan/table1_synthesis.json
    python scripts/organism_tables.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORGANISMS = {"moft-tiny": ROOT / "docs/results", "moft-tiny-wan": ROOT / "docs/results/moft-tiny-wan"}
SUITES = ["table1_synthesis", "table1_reference", "camera_pan", "table4_channels", "ablations",
          "two_objects", "glitch", "zoom", "prompt_no_motion", "transfer_real", "control_goals"]
# (report key, column title, format); a key missing from a suite's rows is left out of its table
COLUMNS = [("direction_success", "direction success ↑", "{:.2f}"),
           ("toward_px", "pushed toward (px) ↑", "{:+.1f}"),
           ("trajectory_error", "trajectory error ↓", "{:.3f}"),
           ("motion_fidelity_lk", "Motion Fidelity (LK) ↑", "{:.1f}"),
           ("ssim_outside", "SSIM outside ↑", "{:.3f}"),
           ("glitch", "glitch rate ↓", "{:.2f}"),
           ("split", "split rate ↓", "{:.2f}"),
           ("zoom_success_lk", "zoom success ↑", "{:.2f}"),
           ("seconds", "s / video", "{:.1f}")]
SCALE = {"motion_fidelity_lk": 100.0}  # shown as the suites' own tables show it
# what the suite's own settings leave to each model's moft.json (filled in per model in the report)
MODEL_DEFAULTS = ("name", "description", "guidance", "target")


def cell(rows: list[dict | None], key: str, fmt: str) -> str:
    """``"a / b"`` of one metric over the organisms' rows (``–`` where a row or value is missing)."""
    out = []
    for row in rows:
        v = None if row is None else row.get(key)
        out.append("–" if v is None else fmt.format(v * SCALE.get(key, 1.0)))
    return " / ".join(out)


def suite_table(name: str) -> str:
    reports = {model: _json(folder / f"{name}.json") for model, folder in ORGANISMS.items()}
    title = f"### {name}\n\n"
    missing = [m for m, r in reports.items() if r is None]
    if missing:
        return title + f"Not measured on {', '.join(missing)} yet.\n"
    suites = [{k: v for k, v in r["suite"].items() if k not in MODEL_DEFAULTS} for r in reports.values()]
    if any(s != suites[0] for s in suites[1:]):
        return title + "The two reports ran different versions of the suite; rerun both.\n"
    old = [m for m, r in reports.items() if r["table"] and "motion_fidelity_lk" not in r["table"][0]]
    if old:  # scored before the LK tracks and the standard SSIM (docs/metrics.md): not comparable
        return title + f"The {', '.join(old)} report predates the current scorer; rerun it.\n"
    rows = {m: {t["setting"]: t for t in r["table"]} for m, r in reports.items()}
    settings = list(dict.fromkeys(s for table in rows.values() for s in table))
    present = [c for c in COLUMNS if any(t.get(c[0]) is not None for table in rows.values() for t in table.values())]
    head = "| setting | scored | " + " | ".join(c[1] for c in present) + " |\n"
    head += "|---" * (len(present) + 2) + "|\n"
    body = ""
    for s in settings:
        per = [rows[m].get(s) for m in ORGANISMS]
        scored = " / ".join("–" if r is None else f"{r['scored']}/{r['items']}" for r in per)
        body += f"| {s} | {scored} | " + " | ".join(cell(per, k, f) for k, _, f in present) + " |\n"
    return title + head + body


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def clips_seen(training: dict, net_steps: int) -> int:
    """Training clips the denoiser saw in its ``net_steps``: each phase's steps times its batch (phases recorded
    before the batch was kept ran at 16)."""
    phases = training.get("phases") or [{"from_step": 0}]
    ends = [ph["from_step"] for ph in phases[1:]] + [net_steps]
    return sum((end - ph["from_step"]) * ph.get("batch", 16) for ph, end in zip(phases, ends))


def organism_facts(model: str) -> dict[str, str]:
    """One column of the summary: what the model is, what it cost, and its measured bars."""
    from moft.models.pipeline import SHIPPED_DIR

    folder, results = SHIPPED_DIR / model, ORGANISMS[model]
    index, defaults = _json(folder / "model_index.json"), _json(folder / "moft.json")
    net_name = "unet" if "unet" in index else "transformer"
    net_config = _json(folder / net_name / "config.json")
    weights = sum(f.stat().st_size for f in (folder / net_name).glob("*.safetensors"))
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    train = defaults["training"]
    steps = train.get(f"{net_name}_steps")
    cpu_h = train.get(f"cpu_seconds_{net_name}", 0.0) / 3600
    gpu_min = train.get(f"gpu_seconds_{net_name}", 0.0) / 60
    facts = {
        "pipeline (denoiser)": f"`{index['_class_name']}` (`{net_config['_class_name']}`)",
        "denoiser parameters": f"{weights / 4 / 1e6:.2f} M",
        "package": f"{size / 2**20:.1f} MB",
        "video": f"{defaults['frames']} frames of {defaults['height']}×{defaults['width']}",
        "training (denoiser)": f"{steps:,} steps, {clips_seen(train, steps) / 1e3:.0f}k clips; {cpu_h:.1f} CPU-hours"
                               + (f" + {gpu_min:.0f} GPU-minutes (H200)" if gpu_min else ""),
    }
    if train.get("vae_steps"):
        facts["training (VAE)"] = f"{train['vae_steps']:,} steps" + (
            f" + {train['vae_decoder_steps']:,} of the decoder alone" if train.get("vae_decoder_steps") else "")
    q = _json(results / "model_quality.json")
    if q:
        sq = q["sample_quality"]
        n = sq["samples"]
        facts["coherent samples (bar ≥ 90%)"] = f"{sq['coherent_fraction']:.0%} ({round(sq['coherent_fraction'] * n)}/{n})"
        facts["prompt's direction followed (bar ≥ 80%)"] = f"{sq['text_direction_fraction']:.0%}"
        d = q.get("moft_decoding")
        if d:
            curve = d.get("learning_curve", {}).get("moft_all_channels", {})
            half = curve.get(str(d["videos"] // 2))  # is the probe still data-limited? (JSON keys are strings)
            width = (_json(folder / "motion_channels.json") or {}).get("num_channels")  # the probe's features
            facts["8-direction decoding, MOFT / raw (bar ≥ 95%)"] = (
                f"{d['accuracy_moft_all_channels']:.1%} / {d['accuracy_raw']:.1%} ({d['videos']} videos"
                + (f", {d['videos'] // width} per channel" if width else "")
                + (f"; {half:.1%} at {d['videos'] // 2}" if half is not None else "") + ")")
    loc = _json(ROOT / "docs/results" / f"locate_{model}.json")
    if loc:
        r = loc["recommendation"]
        facts["`moft locate`: best cell (default site)"] = (
            f"`{r['site']}` at t = {r['timestep']}: {r['moft_accuracy']:.2f} ± {r['standard_error']:.2f} "
            f"(`{r['default_site']['site']}`: {r['default_site']['moft_accuracy']:.2f})")
    k = _json(results / "keep_goal_table.json")  # issue 26's goal suites: the default's column, by name
    chosen = (defaults.get("guidance_chosen_by") or {}).get("setting")
    if k and chosen in k["columns"]:
        fig = {label: values.get(chosen) for label, values in k["figures"].items() if isinstance(values, dict)}
        pick = lambda start: next(v for lab, v in fig.items() if lab.startswith(start))  # noqa: E731
        facts["control with its defaults: direction success, share, split rate, SSIM outside (48 held-out requests)"] = (
            f"{pick('direction'):.2f}, {pick('share'):.2f}, {pick('split'):.2f}, {pick('SSIM'):.2f} ({chosen})")
        return facts
    g = _json(results / "glitch.json")
    if g:
        row = next(t for t in g["table"] if t["setting"] != "unguided")
        split = "–" if row.get("split") is None else f"{row['split']:.2f}"
        facts["control with its defaults: direction success, pushed toward, split rate, SSIM outside (held-out, "
              "glitch suite)"] = (f"{row['direction_success']:.2f}, {row['toward_px']:+.1f} px, {split}, "
                                  f"{row['ssim_outside']:.2f} ({row['scored']} requests)")
    return facts


def summary() -> str:
    """The organisms side by side (the README's table)."""
    cols = {m: organism_facts(m) for m in ORGANISMS}
    keys = list(dict.fromkeys(k for c in cols.values() for k in c))
    text = "| | " + " | ".join(cols) + " |\n|---" * 1 + "|---" * len(cols) + "|\n"
    for k in keys:
        text += f"| {k} | " + " | ".join(c.get(k, "–") for c in cols.values()) + " |\n"
    return text + ("\nFrom each model's `moft.json`, `scripts/model_quality.py`, `moft locate` and issue 26's goal suites (`scripts/keep_goal_table.py`) "
                   "(`python scripts/organism_tables.py`).\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs/results/organisms.md")
    args = ap.parse_args()
    text = ("## The two organisms, suite by suite\n\n"
            "Each cell: **moft-tiny (U-Net) / moft-tiny-wan (DiT)**, the same suite file on each model's shipped "
            "weights, channels and `moft.json` defaults (`python scripts/organism_tables.py`). Settings that turn "
            "shared K/V on run without it on the DiT (full 3-D attention has no per-frame spatial attention to "
            "share); rows named for the model's defaults run each model's own (tuned on its own tuning suite). moft-tiny-wan's "
            "shipped channel file holds all 128 channels of its site (its tuned default), so its MOFT rows are its "
            "+CR rows; the split rate is the share of requests whose object is copied rather than moved. Each suite is small (12 requests a row unless its own table says otherwise): read differences "
            "under about 0.2 in a success rate as noise.\n\n")
    text += "\n".join(suite_table(name) for name in SUITES)
    args.out.write_text(text)
    args.out.with_name("organisms_summary.md").write_text(summary())
    print(f"wrote {args.out} and organisms_summary.md beside it")


if __name__ == "__main__":
    main()
