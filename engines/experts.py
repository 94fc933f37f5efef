"""transformers' grouped mixture-of-experts count tokens per expert with ``torch.histc``, which
neither the TorchScript ONNX exporter nor OpenVINO's frontends convert (53 of 605 base types
failed on it).  Each converter picks another implementation of the same function while it
traces: ``with experts_as(model, "eager"): ...``."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def experts_as(model: torch.nn.Module, implementation: str) -> Iterator[None]:
    """``model``'s experts switched to ``implementation`` (a transformers experts
    implementation name) for the block, and back afterwards; a model without switchable
    experts is left alone."""
    previous = getattr(getattr(model, "config", None), "_experts_implementation", None)
    switch = getattr(model, "set_experts_implementation", None)
    if switch is None or previous in (None, implementation):
        yield
        return
    switch(implementation)
    try:
        yield
    finally:
        switch(previous)
