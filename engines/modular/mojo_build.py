"""Render a Mojo module from templates/mojo/ and build it with ``mojo build`` into a Python
extension, cached by the hash of (source, flags, compiler version).

    path = build_module(source, "skm_1234", optimization_level=3)   # MojoBuildError on failure
    module = import_module_from(path, "skm_1234")

O0-O3 map to the compiler's own ``--optimization-level``; O0 also turns off FMA contraction
(``--fp-mode contract=off``).  Code is generated for the host CPU (the compiler's default), so a
cached module is only reused on the machine type it was built for (the key holds the CPU)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import cache

TEMPLATE_DIR = Path(__file__).resolve().parents[3] / "templates" / "mojo"
BUILD_TIMEOUT = 600.0


class MojoBuildError(RuntimeError):
    """``mojo build`` failed; the message carries the compiler's first error lines."""

    def __init__(self, message: str, stderr: str = ""):
        self.stderr = stderr
        super().__init__(message)


def template_dir() -> Path:
    """templates/mojo/ (the package's own, or the source tree's in an editable install)."""
    from importlib import resources

    try:
        packaged = Path(str(resources.files("skillmill.templates"))) / "mojo"
        if packaged.is_dir():
            return packaged
    except ModuleNotFoundError:  # pragma: no cover - running from a bare source tree
        pass
    return TEMPLATE_DIR


def render(context: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_dir().parent)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)  # fmt: skip
    return env.get_template("mojo/module.mojo.jinja").render(**context)


def mojo_executable() -> str | None:
    """The ``mojo`` compiler: next to this Python (the ``mojo`` wheel puts it there), or PATH."""
    beside = Path(sys.executable).with_name("mojo")
    if beside.exists():
        return str(beside)
    return shutil.which("mojo")


def compiler_version() -> str:
    exe = mojo_executable()
    if exe is None:
        return "absent"
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
        return out.stdout.strip() or out.stderr.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def optimization_flags(level: int) -> list[str]:
    if level not in (0, 1, 2, 3):
        raise ValueError(f"optimization_level must be 0, 1, 2 or 3, not {level!r}")
    flags = [f"--optimization-level={level}"]
    if level == 0:
        flags.append("--fp-mode=contract=off")
    return flags


def build_module(source: str, module_name: str, optimization_level: int = 3) -> tuple[Path, bool, float]:
    """(path of the built extension, cache hit, seconds).  Raises MojoBuildError."""
    exe = mojo_executable()
    if exe is None:
        raise MojoBuildError("the Mojo compiler is not installed (pip install 'skillmill[modular]')")
    flags = optimization_flags(optimization_level)
    key = cache.text_key(source, " ".join(flags), compiler_version(), cache.cpu_identity())
    folder = cache.mojo_dir() / f"{module_name}-{key}"
    target = folder / f"{module_name}.so"
    if target.exists():
        return target, True, 0.0
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / f"{module_name}.mojo"
    src.write_text(source)
    tmp = folder / f"{module_name}.{os.getpid()}.so.tmp"
    started = time.perf_counter()
    try:
        proc = subprocess.run([exe, "build", "--emit", "shared-lib", *flags, str(src), "-o", str(tmp)],
                              capture_output=True, text=True, timeout=BUILD_TIMEOUT)  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise MojoBuildError(f"mojo build timed out after {BUILD_TIMEOUT:.0f} s") from exc
    seconds = time.perf_counter() - started
    if proc.returncode != 0 or not tmp.exists():
        errors = [ln for ln in proc.stderr.splitlines() if "error" in ln]
        summary = "; ".join(errors[:3]) or proc.stderr.strip()[-300:] or f"exit code {proc.returncode}"
        raise MojoBuildError(f"mojo build failed: {summary[:600]}", proc.stderr)
    os.replace(tmp, target)
    return target, False, seconds


def import_module_from(path: Path, module_name: str) -> Any:
    """Import a built extension module (its ``PyInit_<module_name>``) from ``path``."""
    if module_name in sys.modules:
        return sys.modules[module_name]
    loader = importlib.machinery.ExtensionFileLoader(module_name, str(path))
    spec = importlib.util.spec_from_file_location(module_name, str(path), loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    _restore_process_environment()
    sys.modules[module_name] = module
    return module


# Loading a Mojo extension starts Mojo's Python interop, which calls C setenv() for these: e.g.
# PYTHONEXECUTABLE=<pyenv shim> and PYTHONPATH=":".  os.environ never sees it, but every child
# process inherits it, and a venv's python then starts outside its venv ("No module named ...").
_INTEROP_VARIABLES = ("PYTHONEXECUTABLE", "PYTHONPATH", "PYTHONHOME", "MOJO_PYTHON_LIBRARY")


def _restore_process_environment() -> None:
    """Put the C-level environment back to what os.environ says for the interop's variables."""
    for name in _INTEROP_VARIABLES:
        if name in os.environ:
            os.putenv(name, os.environ[name])
        else:
            os.unsetenv(name)
