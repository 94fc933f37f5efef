"""What every sweep and benchmark measures against, in one place: the floor families, the
shapes, the tolerances.

The bar an engine is held to when it proves itself on a skill's first run is the runtime's
(``skillmill.runtime.precision.PARITY_TOLERANCE``) and the error it is measured with is the IR's
(``skillmill.ir.numerics.relative_error``); the sweeps use both, so a type a sweep passes is a
type the runner accepts, and the runners never import anything from here."""

from __future__ import annotations

from skillmill.runtime.precision import PARITY_TOLERANCE

# The floor: these families must pass every sweep; reports list them first.
FLOOR_TYPES = ("bert", "roberta", "distilbert", "albert", "electra", "gpt2", "gpt_neox", "llama",
               "mistral", "qwen2", "phi", "gemma", "t5", "bart", "vit", "deit", "convnext", "resnet",
               "whisper", "clip")  # fmt: skip
# A fixed representative subset that CI runs through the real check on every push: an encoder,
# a decoder with rotary attention and GQA, an encoder-decoder, a vision transformer, a CNN and
# a two-tower text/vision model.
CI_SUBSET = ("bert", "llama", "t5", "vit", "resnet", "clip")

# The two (batch, sequence) shapes every type runs at in the native and MAX sweeps; the first is
# also the export example, the second checks that the batch/sequence dims stayed dynamic.
SHAPES = ((2, 8), (3, 11))
# The native sweep also times each passing type against PyTorch eager at this (batch, sequence),
# where per-node overhead no longer hides kernel speed as it does at (2, 8); a type exported with
# a static sequence length is timed at its first sweep shape instead.
SPEED_SHAPE = (2, 32)
# The (batch, sequence) shapes the MiniLM benchmarks time (bench models, bench modular).
BENCH_SHAPES = ((1, 16), (1, 128), (32, 128))
# What the fp32 engine benchmark (bench models) times: MiniLM at the shapes above and at two
# long sequences, where attention's share grows with seq^2, and a BERT-base-sized model (bert-base's
# config, random weights, 110M parameters), where the weights no longer fit in cache.
MODEL_BENCH_WORKLOADS = (
    ("minilm", 1, 16), ("minilm", 1, 128), ("minilm", 32, 128), ("minilm", 1, 512), ("minilm", 8, 512),
    ("bert-base", 1, 128), ("bert-base", 32, 128),
)  # fmt: skip

# The native and MAX sweeps: relative error max|engine - torch| / max|torch| at float32, the
# runners' own parity bar.
TOLERANCE = PARITY_TOLERANCE["float32"]
# The skill sweep compares element-wise (torch.allclose) with transformers called directly.
RTOL, ATOL = 1e-4, 1e-5
