"""The ``moft`` console script's launcher: Ctrl-C at any moment, the import of torch included, ends with one line
and exit 130; ``import moft`` itself is light (its public names load on first use)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           OMP_NUM_THREADS="1")


def test_the_console_script_is_the_launcher():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["moft"] == "moft.front.launch:main"


def test_import_moft_is_light_and_its_names_load_on_first_use():
    code = ("import sys, moft; assert 'torch' not in sys.modules, 'torch loaded by import moft'; "
            "import moft.method.sampler as s; assert moft.sample is s.sample and 'sample' in dir(moft); "
            "assert all(hasattr(moft, n) for n in moft.__all__); print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stderr
    with pytest.raises(AttributeError, match="no attribute 'bogus'"):
        __import__("moft").bogus


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="watches /proc/PID/maps for torch's library")
@pytest.mark.parametrize("command", [
    ["-c", "from moft.front.launch import main; main()"],  # what the console script runs
    ["-m", "moft"],
])
def test_ctrl_c_during_the_import_of_torch_is_one_line_and_exit_130(command):
    proc = subprocess.Popen([sys.executable, *command, "info"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    maps, deadline = Path(f"/proc/{proc.pid}/maps"), time.monotonic() + 120
    try:
        while "libtorch" not in maps.read_text():  # torch's import is under way once its library is mapped
            assert proc.poll() is None and time.monotonic() < deadline, "torch never started loading"
            time.sleep(0.002)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and err == "interrupted\n" and out == "", err
