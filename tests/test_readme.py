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
    assert (tmp_path / "left-python.gif").stat().st_size > 0 and not (tmp_path / "left.gif").exists()
    assert np.abs(res.frames - res.source_frames).max() > 0.05  # guidance changed the video


@pytest.mark.slow
def test_readme_main_command_the_transfer_the_edit_and_the_image_commands_run(tmp_path):
    for rel in ("examples", "tests"):
        (tmp_path / rel).symlink_to(ROOT / rel)
    runnable = [b for b in _blocks("") if "--init-latents a.latents.safetensors" in b or "--reference tests/data" in b]
    commands = [_main_command()] + [ln.split("#")[0].strip() for b in runnable for ln in b.splitlines()
                                    if ln.startswith("moft ")]
    assert len(commands) == 7  # the main command, the transfer, the edit (2), the image's control, transfer, extract
    for command in commands:
        argv = shlex.split(command)
        out = subprocess.run([sys.executable, "-m", "moft.front.cli", *argv[1:]], cwd=tmp_path, capture_output=True,
                             text=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
        assert out.returncode == 0, (command, out.stderr[-2000:])
    for name in ("left.gif", "bikes.gif", "a.gif", "a.latents.safetensors", "b.gif", "moved.gif", "copied.gif",
                 "disk.safetensors", "disk.png"):
        assert (tmp_path / name).stat().st_size > 0, name


def _notebook() -> dict:
    import json

    return json.loads((ROOT / "examples" / "quickstart.ipynb").read_text())


def test_the_committed_notebook_shows_its_outputs():
    """A user who opens examples/quickstart.ipynb sees it run: every code cell has outputs, the figures inline."""
    cells = [c for c in _notebook()["cells"] if c["cell_type"] == "code"]
    assert cells and all(c["outputs"] for c in cells[1:]), "run python scripts/run_notebook.py"
    images = [o for c in cells for o in c["outputs"] if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # the preview, the frames, the interpretation figure
    text = "".join("".join(o.get("text", "")) for c in cells for o in c["outputs"])
    assert "region 0: moved" in text and "Traceback" not in text and "Warning" not in text


@pytest.mark.notebook
def test_the_notebook_executes_in_a_kernel(tmp_path):
    """The notebook test: nbclient runs examples/quickstart.ipynb in a fresh ipykernel, from a folder beside
    examples/ as a clone has it (scripts/run_notebook.py's --check); its files land there, not in examples/."""
    pytest.importorskip("nbclient", reason="the dev extras install nbclient, nbformat and ipykernel")
    import importlib.util
    import shutil

    spec = importlib.util.spec_from_file_location("run_notebook", ROOT / "scripts" / "run_notebook.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    work = tmp_path / "notebooks"
    work.mkdir()
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    shutil.copy(ROOT / "examples" / "quickstart.ipynb", work)
    nb = runner.execute(work / "quickstart.ipynb", work, timeout=300)
    text = "".join("".join(o.get("text", "")) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "region 0: moved" in text and "torch.Size([8, 4, 16, 16])" in text
    assert sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs) >= 3
    assert (work / "notebook-left.gif").stat().st_size > 0 and not (work / "left.gif").exists()
