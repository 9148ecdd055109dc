"""House rules that a reader should not have to check by eye: imports at the top, short functions.

Each module of the package is parsed with ``ast``: (a) an import of moft's own modules inside a function
(most existed for no reason once ``moft/__init__`` loads everything; a real cycle is fixed by moving the
function to the right layer), (b) a function over 100 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "moft"
MAX_FUNCTION_LINES = 100

# Issue 24 part A has landed: no file is exempt; the whole package may hold at most 5 function-level imports
# of moft's own modules (the launcher's, on purpose, is one of them).
REWORKED_FILES: set = set()
REWORKED_FUNCTIONS: set = set()
MAX_OWN_IMPORTS_IN_FUNCTIONS = 5
# Late on purpose: the launcher installs its Ctrl-C handling, then imports the command line (torch, diffusers).
LATE_ON_PURPOSE = {("front/launch.py", "main")}


def modules() -> list[tuple[str, ast.Module]]:
    return [(path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(), str(path)))
            for path in sorted(PACKAGE.rglob("*.py"))]


def functions(tree: ast.Module):
    """Every function (methods and nested ones included) with the name of its top-level definition."""
    for top in tree.body:
        for node in ast.walk(top):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield getattr(top, "name", ""), node


def own_imports_in_functions(tree: ast.Module) -> list[tuple[str, int, str]]:
    """(top-level definition, line, module) of each import of a moft module inside a function body."""
    found = {}
    for top, function in functions(tree):
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").split(".")[0] == "moft"):
                found[node.lineno] = (top, node.lineno, "." * node.level + (node.module or ""))
            elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == "moft" for a in node.names):
                found[node.lineno] = (top, node.lineno, ", ".join(a.name for a in node.names))
    return sorted(found.values(), key=lambda item: item[1])


def reworked(file: str, top: str) -> bool:
    return file in REWORKED_FILES or (file, top) in REWORKED_FUNCTIONS


def test_the_checks_see_what_they_look_for():
    tree = ast.parse("import os\nfrom .x import y\n\ndef f():\n    from ..io import video\n    import moft.io\n"
                     "    import json\n    def g():\n        from . import z\n" + "    pass\n" * 120)
    assert [(top, line) for top, line, _ in own_imports_in_functions(tree)] == [("f", 5), ("f", 6), ("f", 9)]
    assert max(node.end_lineno - node.lineno + 1 for _, node in functions(tree)) == 126


def test_moft_modules_are_imported_at_the_top_of_modules():
    everywhere, outside = [], []
    for file, tree in modules():
        for top, line, module in own_imports_in_functions(tree):
            everywhere.append(f"{file}:{line} ({top}) {module}")
            if not reworked(file, top) and (file, top) not in LATE_ON_PURPOSE:
                outside.append(everywhere[-1])
    print(f"{len(everywhere)} function-level imports of moft modules in the package:\n" + "\n".join(everywhere))
    assert outside == [], "import these at the top of the module:\n" + "\n".join(outside)
    assert len(everywhere) <= MAX_OWN_IMPORTS_IN_FUNCTIONS


def test_no_function_is_over_100_lines():
    long = [f"{file}:{node.lineno} {node.name}: {node.end_lineno - node.lineno + 1} lines"
            for file, tree in modules() for top, node in functions(tree)
            if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES and not reworked(file, top)]
    assert long == [], "split these into named steps:\n" + "\n".join(long)
