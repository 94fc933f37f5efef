"""Whether MAX and Mojo are usable here, in the words a fallback reason needs.  The hardware
declarations name these (templates/hardware/max.yaml, mojo.yaml: ``callable: ...``), so the
runtime's detection never imports an engine; the probes import ``max`` only through the adapter."""

from __future__ import annotations

import importlib.util


def max_engine(device: str = "cpu"):
    """Modular MAX really starts here: the adapter imports ``max`` (engine, graph, driver); for
    ``gpu`` MAX must also see an accelerator."""
    if importlib.util.find_spec("max") is None:
        return False, "Python package 'max' not installed (pip install 'skillmill[modular]')", None
    try:
        from . import adapter
    except Exception as exc:  # an import that fails is a MAX that is not usable here
        return False, f"MAX cannot start: {type(exc).__name__}: {exc}", None
    accelerators = adapter.accelerator_count()
    if device == "gpu" and not accelerators:
        return False, f"MAX {adapter.MAX_VERSION} sees no accelerator", adapter.MAX_VERSION
    return True, f"MAX {adapter.MAX_VERSION}: cpu + {accelerators} accelerator(s)", adapter.MAX_VERSION


def mojo_compiler():
    """The ``mojo`` compiler is installed and answers ``--version``."""
    from .mojo_build import compiler_version, mojo_executable

    exe = mojo_executable()
    if exe is None:
        return False, "the Mojo compiler is not installed (pip install 'skillmill[modular]')", None
    version = compiler_version()
    if not version.lower().startswith("mojo"):
        return False, f"{exe} does not answer --version ({version})", None
    return True, f"{exe} ({version})", version.split()[1] if len(version.split()) > 1 else version
