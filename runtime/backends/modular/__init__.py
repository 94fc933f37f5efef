"""Modular backends: skillmill's IR lowered to MAX graphs, and Mojo kernels built per model.

Only ``adapter.py`` imports ``max``; everything else reaches MAX through it.  Importing this
package does not import ``max`` (the probes and the fallback reasons work without it)."""
