"""Generation: the one decoding loop (``loop.py``), token choice (``sampling.py``), text <-> ids
(``textcodec.py``), the steppers that run the model one token at a time (``steppers.py``), and
``skill.generate`` on top of them (``api.py``).  The server's completions and chat run the same
loop."""

from .api import Decoder, GenerationResult, generate
from .loop import Row, Stepper
from .sampling import SamplingParams

__all__ = ["Decoder", "GenerationResult", "Row", "SamplingParams", "Stepper", "generate"]
