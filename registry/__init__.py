"""The registry: every transformers model class skillmill knows, from one committed snapshot.

``load_registry()`` reads registry/registry.yaml (fast, no transformers import);
``generate-skills scan`` rebuilds it from the installed transformers (registry/scan.py).
Tiny random models and dummy inputs for any registered class: registry/tiny.py and
registry/dummy_inputs.py; the normalized-config vocabulary: registry/normalized_config.py.
"""

from .scan import ClassRecord
from .snapshot import Registry, load_registry

__all__ = ["ClassRecord", "Registry", "load_registry"]
