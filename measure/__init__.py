"""Every sweep and benchmark: what skillmill measures about itself, and nothing a skill runs.

    measure/constants.py   the floor families, the shapes and the tolerances every sweep uses
    measure/harness.py     forked workers and subprocesses with time limits and a memory cap;
                           --resume and --merge of a sweep's rows
    measure/machine.py     what a benchmark ran on (CPU, SIMD, native kernel path, FMA peak)
    measure/sweeps/        the coverage sweeps: ``BACKENDS`` is the registry `generate-skills
                           coverage --backend` lists (skill, native, max); tiny.py is the forward
                           of every base model type's tiny model (registry/tiny_failures.yaml)
    measure/bench/         the benchmarks `generate-skills bench` runs: kernels, models,
                           modular, serving
    measure/gpu_check.py   a skill's GPU paths run for real and compared with its CPU path
    measure/manager.py     ``UnifiedBackendManager``: every engine present timed for one skill
                           (`generate-skills tune`), written to the decision table that
                           device="auto" reads (runtime/decisions.py)

The direction is one way: measure/ imports the runtime, the IR, the registry and the native
kernels; none of them imports measure/ (tests/foundation/test_import_direction.py).  The verdicts
the runners read are data, registry/support/*.yaml, written by the sweeps here.
"""
