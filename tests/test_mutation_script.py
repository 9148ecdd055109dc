"""``scripts/mutation.py``: every mutant is one real, compilable change, the same on every run."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "mutation.py"


@pytest.fixture(scope="module")
def mutation():
    spec = importlib.util.spec_from_file_location("mutation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutation"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("mutation", None)


def test_every_mutant_of_a_module_compiles_and_changes_it(mutation):
    source, muts = mutation.mutants("shared_kv")
    original = ast.unparse(ast.parse(source))
    assert len(muts) > 10 and [m.index for m in muts] == list(range(len(muts)))
    for m in muts:
        changed = mutation.mutated_source(source, m.index)
        compile(changed, "shared_kv.py", "exec")
        assert changed != original, m


def test_the_mutant_list_is_the_same_on_every_run(mutation):
    assert [(m.line, m.kind) for m in mutation.mutants("drag")[1]] == [(m.line, m.kind) for m in mutation.mutants("drag")[1]]


def test_each_mirror_test_file_exists(mutation):
    root = SCRIPT.parents[1]
    for module, files in mutation.TESTS.items():
        assert mutation.module_path(module).is_file()
        assert all((root / f).is_file() for f in files), module


def test_the_named_breaks_each_apply_to_one_place(mutation):
    root = SCRIPT.parents[1]
    for name, (module, old, new, test) in mutation.NAMED.items():
        assert mutation.module_path(module).read_text().count(old) == 1, name
        assert old != new and (root / test).is_file()
