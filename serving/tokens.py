"""Token rows for the TEI routes: one text or a (query, text) pair, truncated on request, and the
token list with character offsets that /tokenize answers.

Truncation keeps the special tokens ([CLS], [SEP], ...) and cuts content tokens only, from the
end ("Right") or the start ("Left") of each segment; a pair loses tokens from its longer segment
first, as the tokenizers library's ``longest_first`` does.  The full encoding is computed first,
so the caller can name the untruncated length when it refuses instead."""

from __future__ import annotations

from dataclasses import dataclass
from skillmill.runtime.generation.textcodec import TextCodec


@dataclass
class TokenRow:
    ids: list[int]
    type_ids: list[int] | None = None  # segment ids of a pair; None means all zero


@dataclass
class Encoded:
    row: TokenRow
    full_length: int  # before truncation

    @property
    def truncated(self) -> bool:
        return len(self.row.ids) < self.full_length


def encode(
    codec: TextCodec,
    text: str,
    pair: str | None = None,
    *,
    limit: int,
    truncate: bool,
    direction: str = "Right",
) -> Encoded:
    """``text`` (and ``pair``) as one row; cut to ``limit`` tokens when ``truncate``."""
    if codec.is_bytes:  # tiny models: bytes, no special tokens, segments by position
        first = codec.encode(text)
        second = codec.encode(pair) if pair is not None else []
        ids = first + second
        segments: list[int | None] = [0] * len(first) + [1] * len(second)
        type_ids = segments if pair is not None else None
    else:
        encoding = codec.tokenizer(text, pair) if pair is not None else codec.tokenizer(text)
        ids = list(encoding["input_ids"])
        segments = list(encoding.sequence_ids(0))
        type_ids = list(encoding["token_type_ids"]) if "token_type_ids" in encoding else None
    full = len(ids)
    if not truncate or full <= limit:
        return Encoded(TokenRow(ids, type_ids), full)
    keep = _kept_positions(segments, full - limit, direction)
    ids = [ids[i] for i in keep]
    type_ids = [type_ids[i] for i in keep] if type_ids is not None else None
    return Encoded(TokenRow(ids, type_ids), full)


def _kept_positions(segments: list[int | None], excess: int, direction: str) -> list[int]:
    """Indices left after removing ``excess`` content tokens, longest segment first."""
    totals = {s: segments.count(s) for s in set(segments) if s is not None}
    lengths = _shortened(totals, excess)
    seen = {s: 0 for s in totals}
    kept = []
    for i, segment in enumerate(segments):
        if segment is None:
            kept.append(i)
            continue
        position = seen[segment]
        seen[segment] += 1
        if direction == "Left":
            if position >= totals[segment] - lengths[segment]:
                kept.append(i)
        elif position < lengths[segment]:
            kept.append(i)
    return kept


def _shortened(lengths: dict[int, int], excess: int) -> dict[int, int]:
    """Segment lengths after cutting ``excess`` tokens from the longest one first, then from
    both in turn once they are equal (the pair's second segment, the document, first)."""
    order = sorted(lengths, key=lambda s: (lengths[s], s), reverse=True)
    if len(order) == 1:
        return {order[0]: max(0, lengths[order[0]] - excess)}
    big, small = order
    a, b = lengths[big], lengths[small]
    cut = min(excess, a - b)
    a, excess = a - cut, excess - cut
    a, b = a - (excess + 1) // 2, b - excess // 2
    return {big: max(a, 0), small: max(b, 0)}


def tokens_with_offsets(codec: TextCodec, text: str, add_special_tokens: bool) -> list[dict]:
    """TEI's /tokenize entries: id, text, special, and character start/stop (None for special
    tokens, whose text is the token itself)."""
    if codec.is_bytes:
        out = []
        for start, char in enumerate(text):
            for token in codec.encode(char):
                out.append(
                    {"id": token, "text": char, "special": False, "start": start, "stop": start + 1}
                )
        return out
    encoding = codec.tokenizer(
        text,
        add_special_tokens=add_special_tokens,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    ids: list[int] = list(encoding["input_ids"])
    pieces = codec.tokenizer.convert_ids_to_tokens(ids)
    out = []
    for token, piece, (start, stop), special in zip(
        ids, pieces, encoding["offset_mapping"], encoding["special_tokens_mask"]
    ):
        if special:
            out.append({"id": token, "text": piece, "special": True, "start": None, "stop": None})
        else:
            out.append(
                {"id": token, "text": text[start:stop], "special": False,
                 "start": start, "stop": stop}  # fmt: skip
            )
    return out
