"""The import contracts of `make lint` (pyproject.toml, [tool.importlinter]) hold, and a break names its rule."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_code_keeps_every_import_contract():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "0 broken" in done.stdout


def test_a_core_module_importing_an_app_fails_naming_the_rule(tmp_path):
    """A copy of the tree with one bad import: the output names the contract and the import that broke it."""
    for name in ("opsportal", "aiops", "mlops", "llmops"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "migrations"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "opsportal" / "shortcut.py").write_text("from aiops.models import Incident  # noqa\n")
    models = tmp_path / "aiops" / "models" / "__init__.py"
    models.write_text(models.read_text() + "\n\ndef later():\n    from aiops import views  # noqa\n")
    (tmp_path / "mlops" / "zz_one.py").write_text("from mlops import zz_two  # noqa\n")
    (tmp_path / "mlops" / "zz_two.py").write_text("def later():\n    from mlops import zz_one  # noqa\n")

    done = lint_imports(tmp_path)

    assert done.returncode == 1
    out = " ".join(done.stdout.split())
    assert "The core (opsportal) imports no product app BROKEN" in out
    assert "opsportal.shortcut -> aiops.models" in out
    assert "No import cycles between the modules of a package BROKEN" in out
    assert "Declare what the app contributes in its AppConfig" in out
    assert "services call models; never upwards BROKEN" in out
    assert "aiops.models -> aiops.views" in out
    assert "No import cycles between the modules of a package BROKEN" in out
    assert "No cycles are allowed in mlops" in out
