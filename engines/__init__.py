"""What the IR and the skills run on: one package per engine, behind one small interface.

An engine's runner is a function ``run_<target>(skill, batch) -> BackendOutput``.  It either
computes the batch or raises ``skillmill.runtime.errors.BackendUnavailable(target, reason)`` so
the skill falls back to the next target with that reason in its result.  Every engine other than
PyTorch eager at float32 goes through the shared core, ``parity.run_proven``: it converts or
lowers the model once per input signature (sharing one ``torch.export`` between engines), runs
it, proves the first run against PyTorch eager float32 within the precision's tolerance, and
keeps the verdict, or the reason it cannot run.

    engines/parity.py     the shared core: per-signature cache, parity check, refusals
    engines/pytorch/      PyTorch eager (cpu, cuda, rocm, mps; bf16 under torch.autocast)
    engines/native/       skillmill's IR executor on the C SIMD kernels (skillmill.native)
    engines/openvino/     OpenVINO, compiled with an explicit precision hint read back
    engines/modular/      Modular MAX graphs and Mojo kernels: the IR -> MAX lowering, the Mojo
                          kernel rendering and build, one compile cache, and ``adapter.py``,
                          the only module that imports ``max``
    engines/web/          the wasm, webgpu and webnn targets: the ONNX export run by the pinned
                          ONNX Runtime Web in headless Chromium (docs/web.md)

Imports run down: an engine may use the runtime's vocabulary (errors, precision, outputs), the
IR, the registry's support table and the native kernels; the runtime's own modules never import
an engine (the generated skills do, through generated/_targets.py, and hardware detection calls
an engine's probe by the name its declaration gives).
"""

from dataclasses import dataclass
from typing import Any


@dataclass
class BackendOutput:
    outputs: dict[str, Any]  # flattened: {"last_hidden_state": tensor, ...}
    device: str
    # What computed the outputs inside the target: "torch", "native" (skillmill's executor),
    # "openvino", ...; empty means the target's own name.
    engine: str = ""
    # Why a preferred engine inside the target was not used (the cpu target's native executor
    # falling back to torch eager); it joins the result's ``fallback_reason``.
    engine_fallback: str | None = None
    # The precision the engine computed at ("float32", "bf16"); see runtime/precision.py.
    precision: str = "float32"
    # What the engine's first run for this input signature proved against PyTorch eager float32
    # (engines/parity.Parity); None for PyTorch eager at float32, the reference itself.
    parity: Any = None
