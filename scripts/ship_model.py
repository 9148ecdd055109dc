"""Assemble the shipped model: EMA weights from a training run, fitted motion channels, defaults.

Usage:
    python scripts/ship_model.py --run runs/shipped [--guidance-scale 4.0] [--out src/moft/shipped/moft-tiny]

Writes OUT (a diffusers AnimateDiffPipeline folder, loadable with from_pretrained) with
``motion_channels.safetensors`` (+ .json) fitted by DDIM inversion of synthetic pans, and ``moft.json``
(the model's default prompt and CFG scale, plus the training record).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=Path("runs/shipped"))
    ap.add_argument("--out", type=Path, default=ROOT / "src/moft/shipped/moft-tiny")
    ap.add_argument("--guidance-scale", type=float, default=4.0)
    ap.add_argument("--prompt", default="a red disk standing still")
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--rank", default="pca", choices=("pca", "separation"), help="channel ranking (fit_channels)")
    ap.add_argument("--guidance-from", type=Path, default=None,
                    help="an evaluation report of step-size settings: write the best one (direction success, "
                         "then smaller step) into moft.json's guidance defaults and exit")
    args = ap.parse_args()
    if args.guidance_from is not None:
        report = json.loads(args.guidance_from.read_text())
        steps = {s["name"]: s["step_size"] for s in report["suite"]["settings"]}
        rows = [t for t in report["table"] if t["setting"] in steps and t["direction_success"] is not None]
        best = max(rows, key=lambda t: (round(t["direction_success"], 6), -steps[t["setting"]]))
        defaults_path = args.out / "moft.json"
        defaults = json.loads(defaults_path.read_text())
        defaults["guidance"] = {"step_size": steps[best["setting"]]}
        defaults["guidance_chosen_by"] = {"report": str(args.guidance_from), "setting": best["setting"],
                                          "direction_success": best["direction_success"]}
        defaults_path.write_text(json.dumps(defaults, indent=2) + "\n")
        print(f"guidance step_size {steps[best['setting']]} ({best['setting']}: direction success "
              f"{best['direction_success']:.2f})")
        return
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run([sys.executable, str(ROOT / "scripts/train_shipped_model.py"), "--run", str(args.run),
                    "--export", str(tmp)], check=True)
    import torch

    from moft.channels import fit_channels
    from moft.models import load_pipeline

    t0 = time.time()
    pipe = load_pipeline(str(tmp))
    channels = fit_channels(pipe, method="inversion", scenes=args.scenes, rank=args.rank, model_name="moft-tiny")
    channels.save(tmp / "motion_channels.safetensors")
    training = json.loads((tmp / "TRAINING.json").read_text())
    # the VAE's own checkpoint says how long it trained (a run branched from another has no VAE log rows)
    training["vae_steps"] = torch.load(args.run / "vae_ckpt.pt", map_location="cpu", weights_only=False)["step"]
    (tmp / "TRAINING.json").unlink()
    (tmp / "moft.json").write_text(json.dumps({
        "prompt": args.prompt, "guidance_scale": args.guidance_scale, "frames": 8, "height": 32, "width": 32,
        "training": training, "channels_fit_seconds": round(time.time() - t0, 1),
    }, indent=2) + "\n")
    shutil.rmtree(args.out, ignore_errors=True)
    tmp.rename(args.out)
    print(f"shipped {args.out}: horizontal {channels.horizontal.tolist()}, vertical {channels.vertical.tolist()}")


if __name__ == "__main__":
    main()
