"""The browser targets measured: all-MiniLM-L6-v2 and the tiny ViT through ONNX Runtime Web's wasm
and WebGPU execution providers in headless Chromium (engines/web), beside PyTorch eager on the
same batch.  Prints the machine, then per model and provider: session open, first run, the median
in-page run, and the largest relative error against PyTorch eager float32 (docs/web.md's table).

    python -m skillmill.measure.bench.web
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import time

import torch


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    from skillmill import load_skill
    from skillmill.engines import parity
    from skillmill.engines.web import browser, runner
    from skillmill.runtime.cpu_features import best_simd

    from .models import minilm_folder

    sentences = ["A man is eating food.", "Two men pushed carts through the woods."]
    image = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    cases = [
        ("all-MiniLM-L6-v2", load_skill("BertModel", model=minilm_folder()),
         lambda skill: skill.prepare_inputs(sentences)),
        ("tiny ViT", load_skill("ViTModel", model="tiny"), lambda skill: {"pixel_values": image}),
    ]  # fmt: skip
    page = browser.shared_browser()
    print(f"cpu: {cpu_name()} ({best_simd()}), torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads; Chromium {page.version}; "
          f"onnxruntime-web {runner.runtime.installed_version()}")  # fmt: skip
    for name, skill, make in cases:
        batch = make(skill)
        reference = parity.reference_outputs(skill, batch)
        eager = []
        for _ in range(5):
            start = time.perf_counter()
            parity.reference_outputs(skill, batch)
            eager.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        path = runner.export(skill, batch, reference)
        shapes = ", ".join(f"{k} {'x'.join(map(str, v.shape))}" for k, v in batch.items())
        print(f"{name}: {shapes}; export {time.perf_counter() - start:.1f} s, "
              f"{path.stat().st_size / 1e6:.1f} MB; torch eager median {statistics.median(eager):.1f} ms")  # fmt: skip
        for provider in ("wasm", "webgpu"):
            start = time.perf_counter()
            session = runner.WebSession(path, provider, reference)
            opened = time.perf_counter() - start
            outputs = session.run(batch)
            first = session.last_ms
            error = parity.check_parity(provider, "float32", outputs, reference).error
            later = []
            for _ in range(3 if provider == "webgpu" and path.stat().st_size > 10e6 else 5):
                session.run(batch)
                later.append(session.last_ms)
            print(f"  {provider}: {session.device}; open {opened:.1f} s; first run {first:.0f} ms; "
                  f"median of {len(later)} later runs {statistics.median(later):.1f} ms (in page); "
                  f"max relative error {error:.2e}")  # fmt: skip
            session.close()


if __name__ == "__main__":
    main()
