"""The component folders must never shadow the standard library (see DESIGN: `operator/`)."""

import importlib
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_import_operator_is_stdlib_from_repo_root() -> None:
    code = "import operator, sys; print(operator.__file__); print(operator.itemgetter)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert str(REPO_ROOT) not in out.splitlines()[0]
    assert "itemgetter" in out


def test_import_operator_in_this_process_is_stdlib() -> None:
    mod = importlib.import_module("operator")
    assert hasattr(mod, "itemgetter")
    assert not str(getattr(mod, "__file__", "")).startswith(str(REPO_ROOT))


def test_component_packages_import() -> None:
    for name in (
        "datapipelines.resources",
        "datapipelines.operator",
        "datapipelines.api",
        "datapipelines.runner",
    ):
        module = importlib.import_module(name)
        assert str(REPO_ROOT) in str(module.__file__)
