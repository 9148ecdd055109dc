"""The ``moft`` console script: Ctrl-C at any moment ends with one line and exit code 130.

The command line needs torch and diffusers, whose import takes seconds; a Ctrl-C landing in it would
print Python's long ``KeyboardInterrupt`` traceback. This module imports only the standard library, so
the launcher installs its handling first and only then imports the command line (``moft.front.cli``),
whose own ``main`` handles Ctrl-C from there on (temporary files removed, exit 130).

Example:
    $ moft info            # [project.scripts] moft = "moft.front.launch:main"
    $ python -m moft info  # the same (moft/__main__.py)
"""

from __future__ import annotations

import os
import signal
import sys

INTERRUPTED = 130  # 128 + SIGINT, as shells report it


def _interrupted_while_loading(signum, frame):
    """Nothing is written yet while the command line loads: say so in one line and leave at once."""
    sys.stderr.write("interrupted\n")
    sys.stderr.flush()
    os._exit(INTERRUPTED)


def main() -> None:
    """Run the ``moft`` command line with Ctrl-C handled from the first moment."""
    previous = signal.signal(signal.SIGINT, _interrupted_while_loading)
    from .cli import main as run  # the one late import: torch and diffusers load here

    signal.signal(signal.SIGINT, previous)  # from here a Ctrl-C unwinds, so output sets clean up
    run()
