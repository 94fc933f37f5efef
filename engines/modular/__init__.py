"""Modular's two engines, MAX graphs and Mojo kernels, in one package because they share its
parts: MAX's custom ops are skillmill's Mojo kernels, and both compile into one cache.

    runner.py                      run_max / run_mojo, the targets' entry points
    lowering.py, lower_*.py        the IR -> MAX graph compiler (one module per op family)
    max_model.py                   a lowered graph compiled by MAX, cached on disk
    mojo_kernels.py, mojo_build.py Mojo kernels rendered for a model's shapes, built by ``mojo``
    mojo_model.py                  the IR executor with its fused ops on those kernels
    custom_op.py                   the Mojo kernels joined to MAX graphs as custom ops
    cache.py                       the compile cache both engines share
    compile_api.py                 skillmill.compile_to_max / compile_to_mojo
    probes.py                      whether MAX and Mojo are usable here (hardware detection)

Only ``adapter.py`` imports ``max``; everything else reaches MAX through it.  Importing this
package does not import ``max`` (the probes and the fallback reasons work without it)."""
