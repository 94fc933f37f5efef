"""Where the browser engine's two outside pieces are, in the words a fallback reason needs: the
headless Chromium binary (Debian's ``chromium-headless-shell``) and the pinned ONNX Runtime Web
that ``npm ci`` puts in ``engines/web/node_modules`` (``make install`` runs it).  The hardware
declarations call the probes here (``callable: skillmill.engines.web.runtime:...``), so detection
never imports Playwright or starts a browser."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = "onnxruntime-web"
DIST = HERE / "node_modules" / PACKAGE / "dist"
PAGE = HERE / "page"
# What the page imports, and the two files that module loads: the JSEP build of ORT's wasm
# carries the wasm, WebGPU and WebNN execution providers in one binary.
RUNTIME_FILES = (
    "ort.all.min.mjs",
    "ort-wasm-simd-threaded.jsep.mjs",
    "ort-wasm-simd-threaded.jsep.wasm",
)
BROWSERS = ("chromium-headless-shell", "chromium", "google-chrome")
INSTALL_BROWSER = "apt-get install chromium-headless-shell"
INSTALL_RUNTIME = f"npm ci --prefix {HERE} (make install runs it)"


def pinned_version() -> str:
    """The onnxruntime-web version package.json pins (what ``npm ci`` installs)."""
    return json.loads((HERE / "package.json").read_text())["dependencies"][PACKAGE]


def installed_version() -> str | None:
    manifest = DIST.parent / "package.json"
    if not manifest.is_file():
        return None
    return json.loads(manifest.read_text()).get("version")


def runtime_problem() -> str | None:
    """Why the pinned ONNX Runtime Web cannot be served, or None."""
    version = installed_version()
    if version is None:
        return f"npm package {PACKAGE} is not installed in {DIST.parents[1]} ({INSTALL_RUNTIME})"
    if version != pinned_version():
        return (f"npm package {PACKAGE} {version} is installed, package.json pins "
                f"{pinned_version()} ({INSTALL_RUNTIME})")  # fmt: skip
    missing = [name for name in RUNTIME_FILES if not (DIST / name).is_file()]
    if missing:
        return f"{PACKAGE} {version} lacks {', '.join(missing)} ({INSTALL_RUNTIME})"
    return None


def browser_executable() -> tuple[str | None, str]:
    """(path, how it was found) of the headless Chromium: ``$SKILLMILL_WEB_BROWSER`` when set
    (a path, or empty to say there is none), else the first of ``BROWSERS`` on PATH."""
    named = os.environ.get("SKILLMILL_WEB_BROWSER")
    if named is not None:
        if named and os.path.isfile(named) and os.access(named, os.X_OK):
            return named, f"$SKILLMILL_WEB_BROWSER={named}"
        return None, f"$SKILLMILL_WEB_BROWSER={named!r} is not an executable file"
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path, path
    return None, f"no headless Chromium on PATH (tried {', '.join(BROWSERS)}; {INSTALL_BROWSER})"


def problem() -> str | None:
    """Why no page can run here (driver, browser or runtime missing), or None."""
    if importlib.util.find_spec("playwright") is None:
        return "Python package 'playwright' not installed (pip install playwright)"
    path, found = browser_executable()
    if path is None:
        return found
    return runtime_problem()


def probe(execution_provider: str = "wasm"):
    """The declarations' probe: (present, what was found, onnxruntime-web version).  It checks
    files only; what the browser itself can do (WebGPU adapter, WebNN) is asked in the page, and
    a refusal there is the run's fallback reason."""
    why = problem()
    if why:
        return False, why, None
    path, _ = browser_executable()
    version = installed_version()
    return True, f"{path} + {PACKAGE} {version} ({execution_provider} execution provider)", version
