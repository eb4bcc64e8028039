"""The import structure: the contracts of import-linter (floors, no circle, no torch in the
runtime), every module importing alone, and the deployment half loading without torch."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "resnet_deploy"


def module_files() -> dict[str, Path]:
    """``resnet_deploy.x.y`` -> its file, for every module of the package (packages as ``__init__``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent == PACKAGE / "data":  # files we ship, not modules (the Triton Python backend's model.py)
            continue
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = module_files()


def test_import_contracts() -> None:
    """pyproject.toml's import-linter contracts: the floors in pipeline order, no torch in the
    deployment runtime, and no import circle among the modules of any package."""
    lint = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True, timeout=300,
                          cwd=PACKAGE.parent)
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.stdout.count(" KEPT") == 4


def _import_alone(module: str) -> tuple[str, int, str]:
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    return module, proc.returncode, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""


def test_every_module_imports_alone() -> None:
    """Each in a fresh interpreter, so no module works only because another was imported first."""
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(_import_alone, sorted(MODULES)))
    failed = [f"{m}: {err}" for m, code, err in results if code != 0]
    assert len(results) == len(MODULES) > 20 and not failed, failed


NO_TORCH = [
    "resnet_deploy",
    "resnet_deploy.runtime",
    "resnet_deploy.runtime.info",
    "resnet_deploy.serving.triton",
    "resnet_deploy.serving.batch.run",
    "resnet_deploy.serving.batch.worker",
    "resnet_deploy.precision.quantize",
    "resnet_deploy.export",
    "resnet_deploy.export.optimize",
    "resnet_deploy.preprocess",
    "resnet_deploy.profile",
    "resnet_deploy.runtime.environment",
    "resnet_deploy_cli.predict",
    "resnet_deploy_cli.info",
    "resnet_deploy_cli.triton",
    "resnet_deploy_cli.export",
    "resnet_deploy_cli.main",  # every command registered, bench's included
]


@pytest.mark.parametrize("module", NO_TORCH)
def test_deployment_modules_do_not_import_torch(module: str) -> None:
    code = f"import sys, {module}; assert 'resnet_deploy' in sys.modules; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_every_package_is_in_the_distribution() -> None:
    """A package missing from pyproject's list works in an editable install and is absent from a
    wheel: every folder with an __init__.py must be listed."""
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(PACKAGE.parent).parts) for p in PACKAGE.rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)


MAX_MODULE_LINES = 250


def test_no_module_over_250_lines() -> None:
    """A module that grows past this is two concepts: split it before it becomes a second house."""
    files = [*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "cli").glob("*.py")]
    long = {str(f.relative_to(PACKAGE.parent)): n for f in files
            if (n := len(f.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, long
