"""skillmill's own engine: the IR executor (skillmill.ir.executor) on the C SIMD kernels
(skillmill.native), for the model types the native coverage sweep passed."""
