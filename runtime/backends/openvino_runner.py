"""Intel OpenVINO: convert the torch module once (``openvino.convert_model``), compile for the
CPU, run.  Outputs come back positionally; they are named from a flattened reference layout."""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from ..errors import BackendUnavailable
from ..outputs import flatten_outputs
from . import BackendOutput


def _compile(skill: Any, batch: dict[str, torch.Tensor]):
    import openvino

    model = skill.model_on(torch.device("cpu"))
    with torch.inference_mode():
        reference = flatten_outputs(model(**batch))
    converted = openvino.convert_model(model, example_input=dict(batch))
    compiled = openvino.Core().compile_model(converted, "CPU")
    # A conversion that runs but reshapes an output (a dropped batch axis...) is not the model.
    check = compiled({k: v.numpy() for k, v in batch.items()})
    got = [tuple(check[out].shape) for out in compiled.outputs]
    want = [tuple(v.shape) for v in reference.values()]
    if len(got) == len(want) and got != want:
        raise ValueError(f"converted outputs have shapes {got}, PyTorch's {want}")
    return compiled, list(reference)


def run(skill: Any, batch: dict[str, Any]) -> BackendOutput:
    if importlib.util.find_spec("openvino") is None:
        raise BackendUnavailable("openvino", "Python package 'openvino' not installed")
    tensors = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
    switches = sorted(
        k for k, v in batch.items() if not isinstance(v, torch.Tensor) and v is not None
    )
    if switches:  # a converted graph takes tensors only; dropping a switch would change the model
        raise BackendUnavailable(
            "openvino",
            f"non-tensor arguments ({', '.join(switches)}) cannot reach a converted model",
        )
    key = tuple(sorted((k, v.dtype, v.dim()) for k, v in tensors.items()))
    cache = skill.__dict__.setdefault("_openvino_cache", {})
    if key not in cache:
        try:
            # Converting runs the model (reference and trace); models that sample inside forward
            # must not see a different random stream because a backend was tried first.
            with torch.random.fork_rng(devices=[]):
                cache[key] = _compile(skill, tensors)
        except Exception as exc:
            raise BackendUnavailable(
                "openvino", f"conversion failed: {type(exc).__name__}: {str(exc)[:200]}"
            ) from exc
    compiled, names = cache[key]
    try:
        result = compiled({k: v.numpy() for k, v in tensors.items()})
    except RuntimeError as exc:  # the CPU plugin rejects a shape the conversion did not foresee
        raise BackendUnavailable(
            "openvino", f"inference failed: {type(exc).__name__}: {str(exc)[:200]}"
        ) from exc
    values = [torch.from_numpy(result[out].copy()) for out in compiled.outputs]
    if len(values) != len(names):
        raise BackendUnavailable(
            "openvino", f"converted model has {len(values)} outputs, PyTorch has {len(names)}"
        )
    return BackendOutput(dict(zip(names, values)), "openvino:CPU", engine="openvino")
