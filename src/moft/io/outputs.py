"""Writing files so that a reader never sees half of one: atomic single files and output sets.

Every file moft writes goes to a hidden temporary sibling first and is moved into place with
``os.replace``; a failed write (Ctrl-C included) leaves neither a partial target nor a temporary file.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write_text(folder / "scores.json", "{}").read_text()
    '{}'
    >>> with output_set() as stage:                 # several files: all of them, or none
    ...     _ = stage(folder / "a.txt").write_text("a")
    ...     _ = stage(folder / "b.txt").write_text("b")
    >>> sorted(p.name for p in folder.iterdir())
    ['a.txt', 'b.txt', 'scores.json']
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["OutputError", "atomic_file", "atomic_write_bytes", "atomic_write_text", "output_set", "signals_held",
           "temp_sibling"]


class OutputError(ValueError):
    """An output could not be written as asked; the message names the path."""


def temp_sibling(path: Path, suffix: str = "") -> Path:
    """A hidden, unused name in path's folder, ending with ``suffix``."""
    return path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{suffix}"


@contextlib.contextmanager
def atomic_file(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path; on success move it onto ``path``, else delete it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes to ``path`` atomically (temp file + ``os.replace``).

    Example:
        >>> atomic_write_bytes("runs/x/weights.safetensors", blob)          # doctest: +SKIP

    Args:
        path: Target file; parent folders are created.
        data: The bytes.

    Returns:
        The target path.
    """
    path = Path(path)
    with atomic_file(path) as tmp:
        with open(tmp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return path


def atomic_write_text(path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Write text to ``path`` atomically (temp file + ``os.replace``).

    Example:
        >>> atomic_write_text("runs/x/metrics.json", strict_json(scores))   # doctest: +SKIP

    Args:
        path: Target file; parent folders are created.
        text: The text.
        encoding: Text encoding.

    Returns:
        The target path.
    """
    return atomic_write_bytes(path, text.encode(encoding))


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM (delivered on exit) where the platform allows it, else do nothing."""
    held = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


@contextlib.contextmanager
def output_set() -> Iterator:
    """Write several files as a set: all of them are moved into place at the end, or none.

    Example:
        >>> with output_set() as stage:                                    # doctest: +SKIP
        ...     write_video(stage("out/clip.gif"), frames)
        ...     stage("out/clip.report.json").write_text(text)

    ``stage(path)`` returns a hidden temporary path beside ``path`` with the same suffix; write the
    file there. When the block ends without an exception, every staged file replaces its target
    while SIGINT/SIGTERM are held, so an interrupt lands before the first move or after the last;
    on an exception (Ctrl-C included) the temporary files are removed and no target is touched.
    """
    staged: list[tuple[Path, Path]] = []

    def stage(path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_sibling(path, path.suffix)
        staged.append((tmp, path))
        return tmp

    try:
        yield stage
        missing = [str(path) for tmp, path in staged if not tmp.exists()]
        if missing:
            raise OutputError(f"{missing[0]}: staged but never written")
        with signals_held():
            for tmp, path in staged:
                os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()

