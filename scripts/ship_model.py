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
    args = ap.parse_args()
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run([sys.executable, str(ROOT / "scripts/train_shipped_model.py"), "--run", str(args.run),
                    "--export", str(tmp)], check=True)
    from moft.channels import fit_channels
    from moft.models import load_pipeline

    t0 = time.time()
    pipe = load_pipeline(str(tmp))
    channels = fit_channels(pipe, method="inversion", scenes=args.scenes, model_name="moft-tiny")
    channels.save(tmp / "motion_channels.safetensors")
    training = json.loads((tmp / "TRAINING.json").read_text())
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
