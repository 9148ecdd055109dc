"""The README's commands and Python example run as written (on the shipped model), so the first
screen a user reads cannot rot."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _main_command() -> str:
    block = README.split("<!-- main-command -->", 1)[1].split("<!-- /main-command -->", 1)[0]
    line = [ln for ln in block.splitlines() if ln.startswith("pip install")][0]
    return line.split("&&", 1)[1].strip()  # the moft command after the install


@pytest.mark.slow
def test_readme_python_example_runs_and_its_shape_comments_hold(tmp_path, monkeypatch):
    import numpy as np

    (code,) = [b for b in _blocks("python") if "import moft" in b]
    for rel in ("examples",):
        (tmp_path / rel).symlink_to(ROOT / rel)
    monkeypatch.chdir(tmp_path)
    printed: list = []
    namespace = {"print": lambda *a: printed.append(a)}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    ex, cap, res = namespace["ex"], namespace["cap"], namespace["res"]
    assert tuple(ex.moft.shape) == (8, 4, 16, 16) and str(tuple(ex.moft.shape)) in code
    assert tuple(cap.features["up_blocks.1"].shape) == (1, 8, 64, 16, 16)
    assert res.frames.shape == res.source_frames.shape == (8, 32, 32, 3)
    assert (tmp_path / "left.gif").stat().st_size > 0
    assert np.abs(res.frames - res.source_frames).max() > 0.05  # guidance changed the video


@pytest.mark.slow
def test_readme_main_command_the_transfer_and_the_edit_from_the_same_noise_run(tmp_path):
    for rel in ("examples", "tests"):
        (tmp_path / rel).symlink_to(ROOT / rel)
    runnable = [b for b in _blocks("") if "--init-latents a.latents.safetensors" in b or "--reference tests/data" in b]
    commands = [_main_command()] + [ln.split("#")[0].strip() for b in runnable for ln in b.splitlines()
                                    if ln.startswith("moft ")]
    assert len(commands) == 4
    for command in commands:
        argv = shlex.split(command)
        out = subprocess.run([sys.executable, "-m", "moft.front.cli", *argv[1:]], cwd=tmp_path, capture_output=True,
                             text=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
        assert out.returncode == 0, (command, out.stderr[-2000:])
    for name in ("left.gif", "bikes.gif", "a.gif", "a.latents.safetensors", "b.gif"):
        assert (tmp_path / name).stat().st_size > 0, name


@pytest.mark.slow
def test_the_example_notebook_runs_from_examples(tmp_path, monkeypatch):
    """examples/quickstart.ipynb, the notebook a user opens first: every code cell runs in order, from
    a folder beside examples/ as a clone has it."""
    import json

    import numpy as np

    nb = json.loads((ROOT / "examples" / "quickstart.ipynb").read_text())
    work = tmp_path / "notebooks"
    work.mkdir()
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(work)
    namespace: dict = {}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), "quickstart.ipynb", "exec"), namespace)  # noqa: S102
    assert namespace["ex"].moft.shape == (8, 4, 16, 16)
    assert (work / "left.gif").exists() and (work / "extract.png").exists()
    added = (namespace["out"][-1] - namespace["out"][0]) - (namespace["src"][-1] - namespace["src"][0])
    assert np.isfinite(added).all()
