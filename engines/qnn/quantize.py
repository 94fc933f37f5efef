"""The QDQ model QNN's HTP backend runs: a float32 ONNX export quantized by ONNX Runtime's
quantization tools with the QNN configuration, and fixed to one concrete shape per session.

``qdq_model`` takes the float32 ``.onnx`` file (dynamic batch and sequence axes, as
engines/onnxruntime/export.py writes it), makes its attention masks finite (``finite_masks``), runs ``qnn_preprocess_model`` on it (QNN-friendly
fusions; the file is kept as it was when there is nothing to do), calibrates min/max ranges on
the given batches and writes QuantizeLinear/DequantizeLinear pairs around every op
(``get_qnn_qdq_config``): weights uint8, activations uint16 (``ACTIVATIONS``).  The HTP backend
compiles a graph for static shapes, so ``fixed`` pins the model's named dims to one batch's sizes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

# uint16 activations, uint8 weights (QNN's "w8a16"): with uint8 activations, all-MiniLM-L6-v2's
# last_hidden_state on the HTP backend has cosine 0.77 against ONNX Runtime's CPU provider on the
# same QDQ model (0.79 against PyTorch float32: BERT's outlier hidden dims leave a per-tensor
# uint8 scale a handful of levels for everything else); with uint16 activations 0.9996 and 0.981.
ACTIVATIONS = "QUInt16"
WEIGHTS = "QUInt8"
# What an attention mask's -inf (or float32's lowest, -3.4e38) becomes before quantizing: a
# per-tensor scale must span a tensor's whole range, and -inf gives no scale at all (the
# quantizer's zero point turns NaN and QNN cannot compose the graph); -3.4e38 leaves every real
# score in one quantization step.  Softmax weights exp(-100 - max) < 1e-40 for any masked
# position while real scores stay within +-50; over [-100, max] a uint16 step is ~2e-3.
MASK_FLOOR = -100.0


def _reader(feeds: list[dict[str, np.ndarray]]) -> Any:
    """A ``CalibrationDataReader`` over a list of {input name: numpy array}."""
    from onnxruntime.quantization import CalibrationDataReader

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    return Batches()


def finite_masks(model: Any) -> int:
    """Replace every small float constant at or below -1e30 (-inf, float32's lowest: what a
    masked position is filled with) by ``MASK_FLOOR`` in the ONNX ``model``, in place; returns
    how many it replaced."""
    from onnx import numpy_helper

    def patched(tensor: Any) -> bool:
        values = numpy_helper.to_array(tensor)
        if values.dtype.kind != "f" or values.size > 16 or not (values <= -1e30).any():
            return False
        values = np.where(values <= -1e30, MASK_FLOOR, values).astype(values.dtype)
        tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
        return True

    count = sum(patched(init) for init in model.graph.initializer)
    for node in model.graph.node:
        if node.op_type in ("Constant", "ConstantOfShape"):
            count += sum(patched(attr.t) for attr in node.attribute if attr.HasField("t"))
    return count


def qdq_model(fp32_path: str | Path, calibration: list[dict[str, np.ndarray]], out: str | Path) -> Path:
    """Quantize ``fp32_path`` for QNN into ``out`` (QDQ), calibrated on ``calibration``."""
    from onnxruntime.quantization import QuantType, quantize
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config, qnn_preprocess_model

    import onnx

    fp32_path, out = Path(fp32_path), Path(out)
    preprocessed = out.with_name(f"{out.stem}.pre.onnx")
    model = onnx.load(str(fp32_path))
    if finite_masks(model):
        fp32_path = out.with_name(f"{out.stem}.finite.onnx")
        onnx.save(model, str(fp32_path))
    quant_logger = logging.getLogger()
    level = quant_logger.level
    quant_logger.setLevel(logging.ERROR)  # "consider pre-processing" warnings, once per export
    try:
        source = preprocessed if qnn_preprocess_model(str(fp32_path), str(preprocessed)) else fp32_path
        config = get_qnn_qdq_config(str(source), _reader(calibration), activation_type=getattr(QuantType, ACTIVATIONS),
                                    weight_type=getattr(QuantType, WEIGHTS))  # fmt: skip
        quantize(str(source), str(out), config)
    finally:
        quant_logger.setLevel(level)
        preprocessed.unlink(missing_ok=True)
    return out


def fixed(model: bytes, sizes: dict[str, int]) -> bytes:
    """The serialized model with every dim named in ``sizes`` ("batch", "sequence") fixed."""
    import onnx
    from onnxruntime.tools.onnx_model_utils import make_dim_param_fixed

    proto = onnx.load_from_string(model)
    for name, size in sizes.items():
        make_dim_param_fixed(proto.graph, name, int(size))
    return proto.SerializeToString()


def sizes_of(batch: dict[str, Any]) -> dict[str, int]:
    """{"batch": n, "sequence": s} of a batch, as the export named its dynamic axes."""
    from skillmill.engines.onnxruntime.export import BATCH, SEQUENCE, is_sequence_input

    sizes: dict[str, int] = {}
    for tensor in batch.values():
        if tensor.dim():
            sizes.setdefault(BATCH, int(tensor.shape[0]))
        if is_sequence_input(tensor):
            sizes.setdefault(SEQUENCE, int(tensor.shape[1]))
    return sizes
