"""The ``qnn`` target: the skill's model exported to ONNX (float32, engines/onnxruntime/export.py),
quantized to QDQ for QNN (quantize.py) once per input signature, and run by ONNX Runtime's QNN
execution provider on its HTP backend with the CPU fallback disabled (provider.py).  HTP graphs
are static, so each sequence length gets its own session (the QDQ model with its dims fixed), run
one example at a time (``_rows`` says why).

The first run of each signature is proven twice: the QNN outputs against ONNX Runtime's CPU
provider on the same QDQ model (cosine >= ``MIN_COSINE`` for every output: the EP computes what
the quantized model means), then against PyTorch eager float32 through ``parity.run_proven`` at
the ``qdq-w8a16`` tolerance (the quantization's own error; real tokens only).  Either failing
is a verdict, with the reason, and the skill falls back.

Used only when asked for by name (``device="qnn"``): its declaration ranks it below cpu."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skillmill.engines import BackendOutput, parity
from skillmill.runtime.errors import BackendUnavailable

from . import provider, quantize

ENGINE = "qnn"
PRECISION = "qdq-w8a16"
MIN_COSINE = 0.99


@dataclass(frozen=True)
class QnnParity(parity.Parity):
    """``parity.Parity`` (against PyTorch eager float32) plus the check against ONNX Runtime's
    CPU provider on the same QDQ model, and the backend the EP ran."""

    cosine_vs_cpu: float = float("nan")  # the lowest over outputs
    backend: str = ""

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "backend_type": self.backend,
                "against_cpu_qdq": {"provider": "CPUExecutionProvider", "cosine": self.cosine_vs_cpu,
                                    "min_cosine": MIN_COSINE}}  # fmt: skip


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of two tensors flattened (1.0 for two all-zero tensors)."""
    x = parity.as_numpy(a).astype(np.float64).ravel()
    y = parity.as_numpy(b).astype(np.float64).ravel()
    norms = float(np.linalg.norm(x) * np.linalg.norm(y))
    if norms == 0.0:
        return 1.0 if not x.any() and not y.any() else 0.0
    return float(x @ y / norms)


class _Prepared:
    """The QDQ model of one input signature, a QNN session per concrete shape, and ONNX
    Runtime's CPU provider on the same model for the proof."""

    def __init__(self, skill: Any, tensors: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]):
        from skillmill.engines.onnxruntime import export

        self.names = list(reference)
        self.dtypes = {name: value.dtype for name, value in reference.items()}
        calibration = [tensors]
        try:  # the skill's example inputs at this batch's shape, when they are this signature
            example = {k: v for k, v in skill.example_inputs(**_example_shape(tensors)).items()
                       if isinstance(v, torch.Tensor)}  # fmt: skip
            if parity.signature(example) == parity.signature(tensors):
                calibration.append(example)
        except Exception:  # noqa: BLE001 — the batch alone calibrates
            pass
        with tempfile.TemporaryDirectory(prefix="skillmill-qnn-") as folder:
            fp32 = Path(folder) / f"{skill.model_class_name}.onnx"
            export.export_for_engine(skill.model, tensors, fp32, reference=reference)
            feeds = [{k: v.detach().cpu().numpy() for k, v in batch.items()} for batch in calibration]
            qdq = quantize.qdq_model(fp32, feeds, Path(folder) / f"{skill.model_class_name}.qdq.onnx")
            self.model = qdq.read_bytes()
        self.cpu = _cpu_session(self.model)
        self.sessions: dict[tuple, Any] = {}
        self.backend = ""
        self.device = f"{ENGINE}:{provider.BACKEND}"
        self._proved: tuple[Any, dict[str, torch.Tensor]] | None = None

    def _session(self, batch: dict[str, torch.Tensor]) -> Any:
        sizes = quantize.sizes_of(batch)
        key = tuple(sorted(sizes.items()))
        session = self.sessions.get(key)
        if session is None:
            try:
                session = provider.qnn_session(quantize.fixed(self.model, sizes), torch.get_num_threads())
            except provider.QnnUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001 — the EP's own words: an op or a shape it refused
                raise parity.Refused(f"the QNN EP ({provider.BACKEND}) would not take the QDQ model with "
                                     f"{_describe(sizes)} and the CPU fallback off: {parity.describe(exc)}") from exc  # fmt: skip
            self.backend = provider.backend_of(session) or ""
            self.sessions[key] = session
        return session

    def run(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        from skillmill.engines.onnxruntime.export import run_session

        if self._proved is not None and self._proved[0] is batch:  # the proof ran this batch
            outputs, self._proved = self._proved[1], None
            return outputs
        rows = [run_session(self._session(row), row) for row in _rows(batch)]
        return {name: torch.cat([row[name] for row in rows]).to(self.dtypes[name])
                for name in self.names if name in rows[0]}  # fmt: skip

    def prove_against_cpu(self, batch: dict[str, torch.Tensor]) -> float:
        """The lowest cosine over outputs between QNN and the CPU provider on the same QDQ
        model; ``Refused`` below ``MIN_COSINE``."""
        from skillmill.engines.onnxruntime.export import run_session

        got = self.run(batch)
        want = run_session(self.cpu, batch)
        lowest, lowest_name = 1.0, ""
        for name in self.names:
            if name not in want or name not in got:
                continue
            value = cosine(got[name], want[name])
            if value < lowest:
                lowest, lowest_name = value, name
        if not lowest >= MIN_COSINE:
            raise parity.Refused(f"QNN ({self.backend or provider.BACKEND}) output '{lowest_name}' differs from "
                                 f"ONNX Runtime's CPU provider on the same QDQ model: cosine {lowest:.4f} "
                                 f"< {MIN_COSINE}")  # fmt: skip
        self._proved = (batch, got)
        return lowest


def _rows(batch: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """The batch one example at a time (dim 0 is every input's batch dim, as exported).

    The HTP backend runs batch 1: with two or more examples and a padded one among them, the
    emulated HTP computes the second example's attention wrong (all-MiniLM-L6-v2: cosine 0.84 to
    0.92 against the CPU provider on that row, 0.9997 on the first), while one example at a time
    matches on every row."""
    size = next(iter(batch.values())).shape[0] if batch else 1
    return [{name: tensor[i:i + 1] for name, tensor in batch.items()} for i in range(size)]


def _example_shape(tensors: dict[str, torch.Tensor]) -> dict[str, int]:
    sizes = quantize.sizes_of(tensors)
    return {"batch_size": sizes.get("batch", 1), "seq_len": sizes.get("sequence", 16)}


def _describe(sizes: dict[str, int]) -> str:
    return ", ".join(f"{name} {size}" for name, size in sizes.items()) or "no dynamic dims"


def _cpu_session(model: bytes) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _asked(skill: Any) -> bool:
    return str(getattr(skill, "device_request", "auto")).split(":", 1)[0] == ENGINE


def run_qnn(skill: Any, batch: dict[str, Any]) -> BackendOutput:
    """The model as QDQ (uint8 weights, uint16 activations) on the QNN EP's HTP backend, proven
    once per input signature against ONNX Runtime's CPU provider and PyTorch eager float32."""
    if not _asked(skill):
        raise BackendUnavailable(ENGINE, f"used when asked for (device='{ENGINE}')")
    try:
        provider.load()
    except provider.QnnUnavailable as exc:
        raise BackendUnavailable(ENGINE, str(exc)) from exc
    why = parity.float32_model(skill)
    if why:
        raise BackendUnavailable(ENGINE, why)
    if skill.precision != "float32":
        raise BackendUnavailable(ENGINE, f"quantizes a float32 model to {PRECISION} itself; "
                                 f"{skill.precision} was asked ({skill.precision_source})")  # fmt: skip
    tensors = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
    switches = sorted(k for k, v in batch.items() if not isinstance(v, torch.Tensor) and v is not None)
    if switches:
        raise BackendUnavailable(ENGINE, f"non-tensor arguments ({', '.join(switches)}) cannot "
                                 "reach a converted model")  # fmt: skip

    def prepare(reference: dict[str, torch.Tensor]) -> _Prepared:
        prepared = _Prepared(skill, tensors, reference)
        prepared.cosine_vs_cpu = prepared.prove_against_cpu(tensors)
        return prepared

    try:
        outputs, prepared, proof = parity.run_proven(skill, ENGINE, PRECISION, tensors, prepare)
    except parity.EngineDeclined as exc:
        raise BackendUnavailable(ENGINE, exc.reason.removeprefix(f"{ENGINE}: ")) from exc
    proof = QnnParity(proof.engine, proof.precision, proof.error, proof.tolerance, proof.worst_output,
                      prepared.cosine_vs_cpu, prepared.backend)  # fmt: skip
    return BackendOutput(outputs, prepared.device, engine=ENGINE, precision=PRECISION, parity=proof)
