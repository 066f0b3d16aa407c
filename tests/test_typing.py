"""The package type-checks: `mypy --strict python/backprop` reports no errors (and _core.pyi
agrees with the Python code that calls the bindings)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "python" / "backprop"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


def _mypy_version() -> tuple[int, ...]:
    from mypy.version import __version__

    return _version(__version__)


# The result depends on the checker and on numpy's own stubs: mypy < 1.12 and numpy < 2.4
# report errors this code does not have (bare np.ndarray needs TypeVar defaults; older numpy
# leaves np.lib.format untyped and types finfo().eps as floating, not float).
@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
@pytest.mark.skipif(not PACKAGE.is_dir(), reason="no source tree next to the tests")
@pytest.mark.skipif(_version(np.__version__) < (2, 4), reason="numpy < 2.4: older type stubs")
def test_mypy_strict_finds_no_errors(tmp_path):
    if _mypy_version() < (1, 12):
        pytest.skip("mypy < 1.12 does not understand numpy's TypeVar defaults")
    # From the repository root, so pyproject.toml's [tool.mypy] settings apply; a fresh cache
    # outside the tree, so the check neither reuses a stale one nor leaves one behind.
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "mypy_cache"), str(PACKAGE.relative_to(ROOT))],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout
