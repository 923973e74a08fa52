"""Deployment packages of emulated Lambda functions: extraction and handler import.

A function's zip (moto keeps its bytes on ``LambdaFunction.code_bytes``) is extracted once per
function and code SHA-256 into a per-process directory, and the handler is imported from it by
its dotted path (``lambdas.training_trigger.handler.handler``), exactly as the Lambda Python
runtime does.

The project's packages mirror the repository layout, so a module such as ``lambdas`` may
already be imported from the repository when a function first runs; Python then resolves the
handler through the already-imported package, not the extracted copy. That is the same code as
long as the package's file is byte-identical to the loaded one. The guard below checks exactly
that and refuses to run a handler whose package has drifted from the loaded code
(:class:`StaleDeploymentPackageError`): the fix is to rebuild and redeploy the package.
Modules loaded from ``site-packages`` are dependencies, not project code: a bundled dependency
of another version is not a stale deployment, so they are not compared.
"""

from __future__ import annotations

import atexit
import importlib
import io
import shutil
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

Handler = Callable[[Any, Any], Any]

_ROOT_LOCK = threading.Lock()
_root: Path | None = None


class StaleDeploymentPackageError(RuntimeError):
    """A module the handler needs is loaded from elsewhere with different bytes."""


class HandlerNotFoundError(RuntimeError):
    """The handler string names no callable in the package."""


def extraction_root() -> Path:
    """This process's directory of extracted packages, removed at interpreter exit."""
    global _root
    with _ROOT_LOCK:
        if _root is None:
            _root = Path(tempfile.mkdtemp(prefix="localaws-lambda-"))
            atexit.register(shutil.rmtree, _root, True)
        return _root


@dataclass(frozen=True)
class DeploymentPackage:
    """An extracted zip: its directory and the Python modules it contains."""

    directory: Path
    modules: dict[str, Path]  # dotted module name -> file, relative to directory

    @property
    def top_level_names(self) -> set[str]:
        return {name.split(".", 1)[0] for name in self.modules}


def extract(function_name: str, code_sha256_hex: str, code_bytes: bytes) -> DeploymentPackage:
    """Extract a package once per (function, code digest); later calls reuse the directory."""
    directory = extraction_root() / f"{function_name}-{code_sha256_hex[:16]}"
    with zipfile.ZipFile(io.BytesIO(code_bytes)) as archive:
        names = archive.namelist()
        if not directory.exists():
            staging = Path(tempfile.mkdtemp(dir=extraction_root()))
            archive.extractall(staging)
            try:
                staging.rename(directory)
            except OSError:  # another thread extracted the same digest first
                shutil.rmtree(staging, ignore_errors=True)
    return DeploymentPackage(directory=directory, modules=_module_names(names))


def _module_names(names: list[str]) -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for name in names:
        if not name.endswith(".py"):
            continue
        parts = name[: -len(".py")].split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts and all(part.isidentifier() for part in parts):
            modules[".".join(parts)] = Path(name)
    return modules


@contextmanager
def on_sys_path(package: DeploymentPackage) -> Iterator[None]:
    """Put the package first on ``sys.path`` while the handler is imported and runs."""
    entry = str(package.directory)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        if entry in sys.path:
            sys.path.remove(entry)


def load_handler(package: DeploymentPackage, handler: str) -> Handler:
    """Import ``module.path.function`` from the package, guarding against stale code.

    Raises ImportError (the runtime's ``Runtime.ImportModuleError``), HandlerNotFoundError
    (``Runtime.HandlerNotFound``) or StaleDeploymentPackageError.
    """
    module_name, _, attribute = handler.rpartition(".")
    if not module_name:
        raise HandlerNotFoundError(f"Bad handler '{handler}': expected 'module.function'")
    _evict_other_extractions(package)
    module = importlib.import_module(module_name)
    check_not_stale(package)
    function = getattr(module, attribute, None)
    if not callable(function):
        raise HandlerNotFoundError(f"Handler '{attribute}' missing on module '{module_name}'")
    return function  # type: ignore[no-any-return]


def _evict_other_extractions(package: DeploymentPackage) -> None:
    """Forget modules imported from an older or another function's extracted package.

    Otherwise ``pkg.handler`` would keep resolving through the ``pkg`` imported from the
    previous code digest, and an updated function would run its old code.
    """
    root = extraction_root()
    for top in package.top_level_names:
        loaded = sys.modules.get(top)
        if loaded is None:
            continue
        locations = _module_locations(loaded)
        if any(_is_within(path, root) for path in locations) and not any(
            _is_within(path, package.directory) for path in locations
        ):
            for name in [n for n in sys.modules if n == top or n.startswith(f"{top}.")]:
                del sys.modules[name]


def check_not_stale(package: DeploymentPackage) -> None:
    """Compare every loaded project module the package contains with the package's copy."""
    stale: list[str] = []
    for name, relative in package.modules.items():
        module = sys.modules.get(name)
        loaded_file = getattr(module, "__file__", None) if module is not None else None
        if loaded_file is None:
            continue
        loaded = Path(loaded_file)
        if _is_within(loaded, package.directory) or _is_dependency(loaded):
            continue
        packaged = package.directory / relative
        if not loaded.is_file() or loaded.read_bytes() != packaged.read_bytes():
            stale.append(f"{name} (loaded from {loaded})")
    if stale:
        raise StaleDeploymentPackageError(
            "deployment package is stale: redeploy. These modules are already imported in this "
            "process with different code than the function's package: " + ", ".join(stale)
        )


def _module_locations(module: ModuleType) -> list[Path]:
    paths = [Path(p) for p in getattr(module, "__path__", [])]
    file = getattr(module, "__file__", None)
    return [*paths, Path(file)] if file else paths


def _is_within(path: Path, directory: Path) -> bool:
    return path.resolve().is_relative_to(directory.resolve())


def _is_dependency(path: Path) -> bool:
    return any(part in {"site-packages", "dist-packages"} for part in path.parts)
