"""The ``onnxruntime`` target: the skill's model exported to ONNX once per input signature
(``export.export_onnx``, in a temporary folder) and run by an ``onnxruntime.InferenceSession`` on
the CPU execution provider, with as many intra-op threads as torch uses.  The first run of each
export is proven against PyTorch eager float32 (``parity.run_proven``); one that disagrees is
never used.

Used when asked for, ``device="onnxruntime"``, or when ``device="auto"`` picks it from this
machine's measurements (``generate-skills tune``; the skill names it in ``routed_engine``): its
declaration ranks it below cpu, so auto's fixed order never reaches it, and the runner declines a
skill that did not ask."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Any

import torch

from skillmill.engines import BackendOutput, parity
from skillmill.runtime.errors import BackendUnavailable

from . import export

ENGINE = "onnxruntime"


class _Session:
    """An InferenceSession for one input signature, and the PyTorch output layout it reproduces."""

    def __init__(self, session: Any, reference: dict[str, torch.Tensor]):
        self.session = session
        self.names = list(reference)
        self.dtypes = {name: value.dtype for name, value in reference.items()}
        self.device = f"{ENGINE}:{session.get_providers()[0]}"

    def run(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        outputs = export.run_session(self.session, tensors)
        return {name: outputs[name].to(self.dtypes[name]) for name in self.names if name in outputs}


def _prepare(skill: Any, tensors: dict[str, torch.Tensor], reference: dict) -> _Session:
    """Export for this signature and open a session; the file is read into the session, so the
    temporary folder goes when the session is open."""
    with tempfile.TemporaryDirectory(prefix="skillmill-onnx-") as folder:
        path = Path(folder) / f"{skill.model_class_name}.onnx"
        export.export_for_engine(skill.model, tensors, path, reference=reference)
        session = export.open_session(path)
    return _Session(session, reference)


def _asked(skill: Any) -> bool:
    """Asked for by name, or chosen by ``device="auto"`` from this machine's measurements
    (runtime/decisions.py sets ``routed_engine`` for that call)."""
    named = str(getattr(skill, "device_request", "auto")).split(":", 1)[0] == ENGINE
    return named or getattr(skill, "routed_engine", None) == ENGINE


def run_onnxruntime(skill: Any, batch: dict[str, Any]) -> BackendOutput:
    """ONNX Runtime on the CPU, float32, proven once per input signature against PyTorch."""
    if importlib.util.find_spec("onnxruntime") is None:
        raise BackendUnavailable(ENGINE, "Python package 'onnxruntime' not installed "
                                 "(pip install 'skillmill[onnx]')")  # fmt: skip
    if not _asked(skill):
        raise BackendUnavailable(ENGINE, f"used when asked for (device='{ENGINE}'), or when "
                                 "device='auto' picks it from this machine's measurements "
                                 "(generate-skills tune)")  # fmt: skip
    why = parity.float32_only(skill)
    if why:
        raise BackendUnavailable(ENGINE, why)
    return parity.run_converted(skill, ENGINE, "float32", batch,
                                lambda tensors, reference: _prepare(skill, tensors, reference))  # fmt: skip
