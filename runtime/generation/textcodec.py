"""Text <-> token ids for serving, over either a real HuggingFace tokenizer (a checkpoint that
ships one) or the runtime's ``ByteTokenizer`` (tiny random models, which ship none).

The skill's own tokenizer is used in both directions, so the ids the server feeds the model
are the ids ``skill.process`` would feed it.  ``ByteTokenizer`` maps UTF-8 bytes to
``reserved + byte``; decoding inverts that, and ids that stand for no byte (a random model
emits them freely) are shown as ``<|id|>`` rather than dropped, so no generated token is
silently lost from the text."""

from __future__ import annotations

from typing import Any

from skillmill.runtime.inputs import ByteTokenizer


class TextCodec:
    def __init__(self, tokenizer: Any, eos_token_id: Any = None):
        self.tokenizer = tokenizer
        self.is_bytes = isinstance(tokenizer, ByteTokenizer)
        self.eos_ids = frozenset(
            _as_id_list(eos_token_id) or _as_id_list(getattr(tokenizer, "eos_token_id", None))
        )
        if self.is_bytes:
            self.pad_id = tokenizer.pad_id
        else:
            pad = getattr(tokenizer, "pad_token_id", None)
            self.pad_id = pad if isinstance(pad, int) else 0

    @property
    def kind(self) -> str:
        return (
            "bytes (tiny model, no tokenizer files)"
            if self.is_bytes
            else type(self.tokenizer).__name__
        )

    def encode(self, text: str, special_tokens: bool = True) -> list[int]:
        """All ids of ``text``, untruncated (the caller checks the length against the model)."""
        if self.is_bytes:
            span = self.tokenizer.vocab_size - self.tokenizer.reserved
            ids = [self.tokenizer.reserved + b % span for b in text.encode("utf-8")]
            return ids or [self.tokenizer.reserved]
        return list(self.tokenizer(text, add_special_tokens=special_tokens)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        if not self.is_bytes:
            return self.tokenizer.decode(ids, skip_special_tokens=True)
        reserved = self.tokenizer.reserved
        pieces: list[str] = []
        run = bytearray()
        for token in ids:
            if reserved <= token < reserved + 256:
                run.append(token - reserved)
                continue
            if run:
                pieces.append(run.decode("utf-8", errors="replace"))
                run = bytearray()
            if token >= reserved + 256:
                pieces.append(f"<|{token}|>")
            # ids below ``reserved`` are padding/special ids: no text
        if run:
            pieces.append(run.decode("utf-8", errors="replace"))
        return "".join(pieces)

    def chat_prompt(self, messages: list[tuple[str, str]]) -> tuple[list[int], str]:
        """(prompt ids, how the prompt was built) for [(role, text), ...].

        A tokenizer with a chat template uses it; otherwise the plain transcript
        ``role: text`` per line, ending with ``assistant:``, is the prompt."""
        template = getattr(self.tokenizer, "chat_template", None)
        if not self.is_bytes and template:
            ids = self.tokenizer.apply_chat_template(
                [{"role": r, "content": t} for r, t in messages],
                add_generation_prompt=True,
                tokenize=True,
            )
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return list(ids), "the tokenizer's chat template"
        text = "".join(f"{role}: {content}\n" for role, content in messages) + "assistant:"
        return self.encode(text), "plain transcript ('role: text' lines, then 'assistant:')"


def _as_id_list(value: Any) -> list[int]:
    if isinstance(value, int):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, int)]
    return []
