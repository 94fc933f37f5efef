"""Make `import torchvision` work on the CPU build of torch, so timm (and the transformers models
that wrap timm) can run.

PyPI's torchvision==0.28.0 is the one wheel that matches torch==2.13.0, but it is a CUDA build:
its C++ extension (`torchvision/_C.so`) links `libtorch_cuda.so`, which the CPU torch does not
ship, so it fails to load.  torchvision tolerates that for every op except two:
`_meta_registrations.py` registers fake kernels for `torchvision::nms` and `torchvision::qnms`
without checking that the extension loaded, and `import torchvision` dies with "operator
torchvision::nms does not exist" -- taking `import transformers` model classes with it.

`define_missing_ops()` declares just those two schemas (no kernels) when, and only when,
torchvision is installed and its extension cannot load.  Nothing is faked: calling
`torchvision.ops.nms` still fails ("could not run 'torchvision::nms' with arguments from the
'CPU' backend"), as every other C++ op fails with torchvision's own "Couldn't load custom C++
ops"; the pure-Python parts that timm needs (`torchvision.ops.misc`, transforms) work.

It runs from torch's documented plugin hook (the `torch.backends` entry point in
pyproject.toml), which torch calls at the end of `import torch` -- before anything can import
torchvision, whichever package imports it first.  (`TORCH_DEVICE_BACKEND_AUTOLOAD=0` switches
torch's plugin hook off, and with it this fix.)
"""

from __future__ import annotations

import ctypes
import importlib.util
from pathlib import Path
from typing import Any

# Kept alive for the life of the process: dropping the Library object removes its definitions.
_LIBRARY: Any = None
MISSING_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)


def _extension_path() -> Path | None:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("_C*.so")) + sorted(folder.glob("_C*.pyd"))
    return found[0] if found else None


def extension_loads() -> bool | None:
    """None when torchvision is not installed, else whether its C++ extension can be loaded."""
    path = _extension_path()
    if path is None:
        return None
    try:
        ctypes.CDLL(str(path))
    except OSError:
        return False
    return True


def define_missing_ops() -> bool:
    """Declare the two schemas torchvision's import needs when its extension cannot load.
    Returns whether it declared them.  Never raises: torch turns a failing plugin into a
    failing `import torch`."""
    global _LIBRARY
    try:
        if _LIBRARY is not None or extension_loads() is not False:
            return False
        import torch

        library = torch.library.Library("torchvision", "DEF")
        for schema in MISSING_SCHEMAS:
            library.define(schema)
        _LIBRARY = library
        return True
    except Exception:  # noqa: BLE001 - a compat shim must never break `import torch`
        return False
