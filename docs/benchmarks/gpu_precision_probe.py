"""The probe behind minilm-gpu-h100-2026-11-22.json's "precision" section, kept as it ran.

Which MAX GPU op loses float32 precision: each op's relative error against float64, beside
PyTorch's CUDA matmul with and without TF32.  It calls max.graph directly (it probes MAX itself,
not skillmill's lowering), so it needs a GPU and is no part of the package or the tests.

    python docs/benchmarks/gpu_precision_probe.py
"""
import numpy as np, torch
from max import driver, engine
from max.graph import Graph, TensorType, DeviceRef, ops
from max.dtype import DType
dev = DeviceRef.GPU()
n = 384
t = TensorType(DType.float32, [n, n], device=dev)
with Graph("precision", input_types=[t, t]) as g:
    a, b = (v.tensor for v in g.inputs)
    g.output(ops.matmul(a, b), ops.exp(a), ops.tanh(a), ops.gelu(a), ops.softmax(a), ops.sqrt(ops.abs(a)), a / (b + 10.0))
acc = driver.Accelerator()
session = engine.InferenceSession(devices=[acc])
model = session.load(g)
rng = np.random.default_rng(0)
A = rng.standard_normal((n, n)).astype(np.float32); B = rng.standard_normal((n, n)).astype(np.float32)
outs = model.execute(driver.Buffer.from_numpy(A).to(acc), driver.Buffer.from_numpy(B).to(acc))
got = [o.to(driver.CPU()).to_numpy() for o in outs]
A64, B64 = torch.from_numpy(A).double(), torch.from_numpy(B).double()
refs = [A64 @ B64, A64.exp(), A64.tanh(), torch.nn.functional.gelu(A64), A64.softmax(-1), A64.abs().sqrt(), A64 / (B64 + 10)]
for name, g_, r in zip(["matmul", "exp", "tanh", "gelu(erf)", "softmax", "sqrt", "div"], got, refs):
    r = r.numpy()
    print(f"{name:10} rel err {np.max(np.abs(g_ - r)) / np.max(np.abs(r)):.2e}")
A32, B32 = torch.from_numpy(A).cuda(), torch.from_numpy(B).cuda()
for tf32 in (False, True):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    r = (A32 @ B32).double().cpu().numpy(); ref = (A64 @ B64).numpy()
    print(f"torch cuda matmul allow_tf32={tf32}: rel err {np.max(np.abs(r - ref)) / np.max(np.abs(ref)):.2e}")
