"""The QNN execution provider as ONNX Runtime loads it: a plugin library from the
``onnxruntime-qnn`` wheel (``onnxruntime_qnn.get_library_path()``), registered once per process,
and sessions that run every node on its HTP backend or fail to open.

The wheel is a separate module (``onnxruntime_qnn``) that depends on ``onnxruntime`` and brings
only the EP and the QNN libraries (libQnnHtp.so, the HTP emulator on x86_64, libQnnSystem.so,
...), so it installs beside the CPU package.  A registered plugin EP is reached through
``onnxruntime.get_ep_devices()`` and ``SessionOptions.add_provider_for_devices``; it never appears
in ``get_available_providers()`` (microsoft/onnxruntime#27832), so the ``onnxruntime_provider``
probe cannot see it and detection calls ``probe`` here instead.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

EP_NAME = "QNNExecutionProvider"
BACKEND = "htp"
# The HTP emulator models one Snapdragon SoC.  With the EP's default model, MiniLM's graph
# (a 30522x384 embedding table) fails to finalize here with QNN_COMMON_ERROR_MEM_ALLOC; with
# soc_model 60 (Snapdragon 8 Gen 3) it finalizes and runs.
SOC_MODEL = "60"
# The EP's session options: the HTP backend on that SoC.
OPTIONS = {"backend_type": BACKEND, "soc_model": SOC_MODEL}
# Libraries the HTP backend loads from the wheel's folder.
NEEDED = ("libonnxruntime_providers_qnn.so", "libQnnHtp.so", "libQnnSystem.so")

_registered: dict[str, Any] = {}


class QnnUnavailable(RuntimeError):
    """The QNN EP cannot load here; the message names the package, library or backend missing."""

    plain_message = True


def library_path() -> str:
    """The EP library's path inside the installed wheel; ``QnnUnavailable`` naming what is
    missing (the package, or one of the libraries the HTP backend needs)."""
    if importlib.util.find_spec("onnxruntime") is None:
        raise QnnUnavailable("Python package 'onnxruntime' not installed (pip install 'skillmill[qnn]')")
    if importlib.util.find_spec("onnxruntime_qnn") is None:
        raise QnnUnavailable("Python package 'onnxruntime-qnn' not installed (pip install "
                             "'skillmill[qnn]'): it ships the QNN execution provider and the HTP backend")  # fmt: skip
    import onnxruntime_qnn

    path = onnxruntime_qnn.get_library_path()
    folder = os.path.dirname(path)
    missing = [name for name in NEEDED if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise QnnUnavailable(f"onnxruntime-qnn {onnxruntime_qnn.__version__} lacks {', '.join(missing)} "
                             f"in {folder} (the {BACKEND} backend needs them; reinstall onnxruntime-qnn)")  # fmt: skip
    return path


def load(path: str | None = None) -> list[Any]:
    """Register the EP library with ONNX Runtime (once per process and path) and return its
    devices; ``QnnUnavailable`` when the library is missing, will not load, or offers no device."""
    import onnxruntime

    path = path or library_path()
    if path in _registered:
        return _registered[path]
    if not os.path.isfile(path):
        raise QnnUnavailable(f"the QNN EP library {path} does not exist")
    if not hasattr(onnxruntime, "register_execution_provider_library"):
        raise QnnUnavailable(f"onnxruntime {onnxruntime.__version__} cannot load plugin execution "
                             "providers (needs 1.22 or later)")  # fmt: skip
    try:
        onnxruntime.register_execution_provider_library(EP_NAME, path)
    except Exception as exc:  # noqa: BLE001 — a library that does not load, or the wrong ABI
        if "already registered" not in str(exc):
            raise QnnUnavailable(f"onnxruntime {onnxruntime.__version__} could not load the QNN EP "
                                 f"library {path}: {' '.join(str(exc).split())[:200]}") from exc  # fmt: skip
    devices = [d for d in onnxruntime.get_ep_devices() if d.ep_name == EP_NAME]
    if not devices:
        raise QnnUnavailable(f"the QNN EP library {path} loaded but offers no device")
    _registered[path] = devices
    return devices


def probe() -> tuple[bool, str, str | None]:
    """Detection (templates/hardware/qnn.yaml): whether the EP loads, with its version."""
    try:
        load()
    except QnnUnavailable as exc:
        return False, str(exc), None
    import onnxruntime
    import onnxruntime_qnn

    version = onnxruntime_qnn.__version__
    return True, (f"QNN EP from onnxruntime-qnn {version} ({BACKEND} backend, soc_model {SOC_MODEL}) "
                  f"on onnxruntime {onnxruntime.__version__}"), version  # fmt: skip


def qnn_session(model: str | bytes, threads: int | None = None) -> Any:
    """An ``InferenceSession`` on the QNN EP's HTP backend with the CPU fallback disabled: it
    opens only when QNN takes every node (otherwise ONNX Runtime refuses, naming why)."""
    import onnxruntime

    devices = load()
    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    options.add_provider_for_devices(devices, dict(OPTIONS))
    return onnxruntime.InferenceSession(model, options)


def backend_of(session: Any) -> str | None:
    """The backend the session's QNN EP runs on, as the EP reports it ("htp")."""
    return session.get_provider_options().get(EP_NAME, {}).get("backend_type")
