"""Package hygiene: no pickle, light imports, every docstring example runs, public API importable."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import intentrec

SRC = Path(intentrec.__file__).resolve().parent
MODULES = sorted(m.name for m in pkgutil.walk_packages([str(SRC)], prefix="intentrec.") if m.name != "intentrec.__main__")


def test_nothing_is_ever_unpickled_or_pickled() -> None:
    bad = re.compile(r"^\s*(import pickle|from pickle|import joblib|import cloudpickle)|(?<!safetensors\.)torch\.(load|save)\(")
    offenders = [
        f"{path.relative_to(SRC)}:{i}"
        for path in SRC.rglob("*.py")
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if bad.search(line) or ("allow_pickle=True" in line)
    ]
    assert offenders == []


@pytest.mark.parametrize("module", ["intentrec", "intentrec.config", "intentrec.vocab", "intentrec.errors"])
def test_light_modules_import_without_torch_or_polars(module: str) -> None:
    code = f"import sys, {module}; bad = [m for m in ('torch', 'polars') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", MODULES)
def test_module_imports_and_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_public_api() -> None:
    from intentrec.data import describe, prepare
    from intentrec.model import IntentRec, IntentRecLoss, build_model
    from intentrec.workflows import evaluate_run, load_run, recommend, train

    assert all(callable(f) for f in (describe, prepare, build_model, evaluate_run, load_run, recommend, train))
    assert IntentRec.__doc__ and IntentRecLoss.__doc__
    assert intentrec.__version__


def test_lazy_top_level_exports() -> None:
    for name in intentrec.__all__:
        assert getattr(intentrec, name) is not None
    with pytest.raises(AttributeError):
        _ = intentrec.no_such_name  # type: ignore[attr-defined]
