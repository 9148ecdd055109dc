"""Re-execute examples/quickstart.ipynb in place with nbclient and write its outputs into it (figures inline).

Usage:
    python scripts/run_notebook.py [--notebook examples/quickstart.ipynb] [--timeout 600] [--check]

The notebook runs from its own folder (examples/), where its files land (ignored by .gitignore). ``--check``
executes a copy in a temporary folder and writes nothing back (what the test does). Needs the ``dev``
extras (nbclient, nbformat, ipykernel).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def execute(path: Path, workdir: Path, timeout: int = 600):
    """Run every cell of the notebook at ``path`` with ``workdir`` as the kernel's folder; returns the executed
    notebook (nbformat node). Raises nbclient's CellExecutionError on the first failing cell."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    os.environ.update(env)  # the kernel inherits the environment: one thread keeps outputs reproducible
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


def main(argv=None) -> None:
    import nbformat

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notebook", type=Path, default=ROOT / "examples" / "quickstart.ipynb")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    ap.add_argument("--check", action="store_true", help="run a copy in a temporary folder, write nothing back")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "notebooks"
            work.mkdir()
            (Path(tmp) / "examples").symlink_to(args.notebook.resolve().parent)
            shutil.copy(args.notebook, work / args.notebook.name)
            execute(work / args.notebook.name, work, args.timeout)
    else:
        nb = execute(args.notebook, args.notebook.resolve().parent, args.timeout)
        for cell in nb.cells:  # no run-specific noise in the committed file
            cell.get("metadata", {}).pop("execution", None)
        nbformat.write(nb, args.notebook)
    print(f"{'checked' if args.check else 'executed and wrote'} {args.notebook} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
