"""Hand-written mutants: small breakages of the code that proves engines, each paired with the
tests that must catch it.  A mutant the tests do not catch (a survivor) is a blind spot.

    python tests/mutation/run.py [--only NAME ...] [--list]

Each mutant edits one source file in place (an exact text replacement, which must match once),
runs its tests in a fresh pytest process, and restores the file, also on Ctrl-C.  The report is
the share of mutants killed; the exit status is 1 when any survives or no longer applies.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGINES = "tests/foundation/test_engines.py"


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the repository root
    find: str
    replace: str
    tests: tuple[str, ...]  # pytest node ids that must fail with the mutant in place


MUTANTS = (
    Mutant("parity never compares values", "engines/parity.py",
           "        if not error <= tolerance:", "        if False:",
           (f"{ENGINES}::test_openvino_that_computes_something_else_falls_back_with_engine_error_and_tolerance",)),
    Mutant("parity skips a missing output", "engines/parity.py",
           "        if got is None:\n            raise", "        if got is None:\n            continue\n            raise",
           (f"{ENGINES}::test_a_dropped_or_reshaped_output_fails_the_proof",)),
    Mutant("verdicts are not kept", "engines/parity.py",
           "        cache[key] = (prepared, parity)\n", "",
           (f"{ENGINES}::test_run_proven_prepares_once_per_signature_and_keeps_both_verdicts",)),
    Mutant("openvino fails on every call", "engines/openvino/runner.py",
           "        result = self.compiled(", "        raise RuntimeError('mutant')\n        result = self.compiled(",
           (f"{ENGINES}::test_openvino_equals_transformers_at_float32[bert]",)),
    Mutant("openvino runs whatever precision it compiled at", "engines/openvino/runner.py",
           "    if got != precision:", "    if False:",
           (f"{ENGINES}::test_openvino_that_compiles_below_the_asked_precision_is_declined",)),
    Mutant("bf16 asked, float32 computed", "engines/pytorch/runner.py",
           "enabled=autocast is not None", "enabled=False",
           (f"{ENGINES}::test_bf16_is_opt_in_and_reports_its_error_against_float32",)),
    Mutant("the environment's precision is ignored", "runtime/precision.py",
           '        value = os.environ.get(ENV_SWITCH, "").strip()', '        value = ""',
           (f"{ENGINES}::test_precision_from_the_environment_and_bad_values",)),
    Mutant("the native executor never runs", "engines/native/runner.py",
           "    if reason is None:\n        try:", "    if False:\n        try:",
           ("tests/foundation/test_skills.py::test_result_carries_backend_device_latency_and_postprocessing",
            "tests/foundation/test_native_cpu.py::test_tiny_bert_runs_native_and_equals_torch")),
    Mutant("the skill sweep runs whatever engine auto picks", "measure/sweeps/skill.py",
           'skill = load_skill(class_name, model=config, device="cpu", native=False)',
           "skill = load_skill(class_name, model=config)",
           ("tests/foundation/test_skills.py::test_tiny_model_through_skill_equals_transformers[bert]",
            "tests/foundation/test_skills.py::test_the_skill_sweep_pins_pytorch_eager_whatever_auto_would_run")),
    Mutant("a GPU fallback is compared with the CPU", "measure/gpu_check.py",
           "ran_there = index > 0 and", "ran_there = True or",
           ("tests/foundation/test_gpu_check.py",)),
    Mutant("relative error ignores the scale", "ir/numerics.py",
           "    return diff / scale if scale else diff", "    return diff / (scale * 1e6) if scale else diff",
           (f"{ENGINES}::test_openvino_that_computes_something_else_falls_back_with_engine_error_and_tolerance",)),
    Mutant("dynamic batching switched off", "serving/app.py",
           "        max_batch_size=settings.batch_size,", "        max_batch_size=1,",
           ("tests/serving/test_serving_commands.py::test_batching_on_vs_off_under_the_same_load",
            "tests/serving/test_serving_openai_client.py::test_concurrent_requests_are_batched_and_answer_as_alone")),
)  # fmt: skip


def run_mutant(mutant: Mutant, timeout: float) -> tuple[str, float]:
    """("killed" | "survived" | "stale: why", seconds)."""
    path = ROOT / mutant.path
    original = path.read_text(encoding="utf-8")
    if original.count(mutant.find) != 1:
        return f"stale: the text to mutate occurs {original.count(mutant.find)} times in {mutant.path}", 0.0
    start = time.perf_counter()
    try:
        path.write_text(original.replace(mutant.find, mutant.replace), encoding="utf-8")
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                               "-p", "no:warnings", *mutant.tests],
                              cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})  # fmt: skip
        verdict = "killed" if proc.returncode == 1 else (
            "survived" if proc.returncode == 0 else f"stale: pytest exited {proc.returncode}: "
            + (proc.stdout.strip().splitlines() or ["?"])[-1])  # fmt: skip
    except subprocess.TimeoutExpired:
        verdict = f"stale: timed out after {timeout:.0f} s"
    finally:
        path.write_text(original, encoding="utf-8")
    return verdict, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=None, help="mutant names to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and their tests")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if args.only is None or m.name in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.name}: {m.path} -> {', '.join(m.tests)}")
        return 0
    killed = 0
    for index, mutant in enumerate(chosen, 1):
        verdict, seconds = run_mutant(mutant, args.timeout)
        killed += verdict == "killed"
        print(f"[{index}/{len(chosen)}] {verdict:<8} {seconds:6.1f} s  {mutant.name} ({mutant.path})", flush=True)
    share = killed / max(len(chosen), 1)
    print(f"mutants killed: {killed} of {len(chosen)} ({share:.0%})")
    return 0 if killed == len(chosen) else 1


if __name__ == "__main__":
    raise SystemExit(main())
