"""A synthetic image-token vocabulary map for VQ-image language models (Chameleon, Emu3).

These models turn an image into VQ codebook indices and then into text-vocabulary ids through
the tokenizer's names for the codebook entries (`config.vocabulary_map`, name -> id).  Checkpoints
carry the map; a config built from defaults has none, so the model cannot even be built.  A tiny
config gets one here: the special names and one name per codebook entry, in the family's naming
scheme, on free ids at the top of the (tiny) text vocabulary -- above the ids random text is
drawn from, below the remapped special tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _chameleon_name(code: int) -> str:
    # Chameleon spells the code's decimal digits as letters (0 -> A ... 9 -> J) between IMGIMG and Z.
    return "IMGIMG" + "".join(chr(ord("A") + int(digit)) for digit in str(code)) + "Z"


def _emu3_name(code: int) -> str:
    return f"<|visual token{code:06d}|>"


# naming scheme (the `codes` of a family's `_image_vocabulary` override) -> name of codebook entry i
CODE_NAMES: dict[str, Callable[[int], str]] = {"chameleon": _chameleon_name, "emu3": _emu3_name}
CODEBOOK_SIZE_KEYS = ("num_embeddings", "codebook_size")


def _taken_ids(d: Any, out: set[int]) -> set[int]:
    """Every token id the config already names (bos, eos, pad...), at any depth."""
    if isinstance(d, dict):
        for key, value in d.items():
            if isinstance(value, dict):
                _taken_ids(value, out)
            elif isinstance(key, str) and key.endswith(("_token_id", "_token_ids")):
                for v in value if isinstance(value, (list, tuple)) else [value]:
                    if isinstance(v, int) and not isinstance(v, bool):
                        out.add(v)
    return out


def add_image_vocabulary(d: dict[str, Any], spec: dict[str, Any]) -> None:
    """Store `vocabulary_map` in the config dict `d`: `spec["specials"]` (e.g. "<image>") and one
    name per entry of the VQ codebook (`d["vq_config"]`) in the `spec["codes"]` naming scheme."""
    name = CODE_NAMES[spec["codes"]]
    vq = d["vq_config"]
    codebook = next(vq[k] for k in CODEBOOK_SIZE_KEYS if isinstance(vq.get(k), int))
    vocab = (d.get("text_config") or d)["vocab_size"]
    taken = _taken_ids(d, set())
    free = [i for i in range(vocab - 1, -1, -1) if i not in taken]
    names = list(spec.get("specials", [])) + [name(code) for code in range(codebook)]
    if len(names) > len(free):
        raise ValueError(f"a {codebook}-entry codebook does not fit a {vocab}-token vocabulary")
    d["vocabulary_map"] = dict(zip(names, reversed(free[: len(names)])))
    if "<image>" in d["vocabulary_map"]:
        # The config derives it from the map in __init__, but from_dict then sets the stored None.
        d["image_token_id"] = d["vocabulary_map"]["<image>"]
