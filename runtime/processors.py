"""The model's own processor: tokenizer, image processor or feature extractor.

A checkpoint folder is read offline through transformers' Auto classes, as a pipeline would read
it.  A tiny or config-built model ships no processor files, so one is built instead:

- text: a tokenizer trained here, deterministically, with the ``tokenizers`` library on the text
  the project ships (``data/tokenizer_corpus.txt``), sized to the model's vocabulary, with the
  special tokens at the ids the model's config names.  Encoders get WordPiece with
  ``[CLS] ... [SEP]`` (what BERT-style heads expect); everything else byte-level BPE, which can
  spell any string.  Too small a vocabulary for either leaves the byte tokenizer, and
  ``Processor.note`` says so.
- images and audio: the model type's processor class with its own defaults, resized to the
  config's image size or mel-bin count.

Each ``Processor`` says where it came from (``source``: checkpoint, trained, defaults, byte), so a
result can report it."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SkillInputError

CORPUS = Path(__file__).with_name("data") / "tokenizer_corpus.txt"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "spiece.model",
                   "vocab.json")  # fmt: skip
IMAGE_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
FEATURE_EXTRACTOR_FILES = ("preprocessor_config.json", "processor_config.json")
# Byte-level BPE starts from 256 byte tokens; below this many ids it cannot learn merges worth
# having, and WordPiece below this many cannot hold the corpus's alphabet and specials.
MIN_BPE_VOCAB = 320
MIN_WORDPIECE_VOCAB = 128
# The families whose checkpoints use a BERT-style tokenizer (WordPiece, [CLS] text [SEP]).
WORDPIECE_FAMILIES = ("encoder",)
# special token name -> (the config attributes that may hold its id, its spelling per scheme)
SPECIALS = {
    "pad_token": (("pad_token_id",), "[PAD]", "<pad>"),
    "unk_token": (("unk_token_id",), "[UNK]", "<unk>"),
    "cls_token": (("cls_token_id",), "[CLS]", "<cls>"),
    "sep_token": (("sep_token_id",), "[SEP]", "<sep>"),
    "mask_token": (("mask_token_id",), "[MASK]", "<mask>"),
    "bos_token": (("bos_token_id", "decoder_start_token_id"), "[BOS]", "<s>"),
    "eos_token": (("eos_token_id",), "[EOS]", "</s>"),
}


@dataclass
class Processor:
    """A processor and where it came from; ``note`` is what a result says about it."""

    value: Any
    source: str  # "checkpoint", "trained", "defaults", "byte" or "skillmill"
    note: str = ""

    def describe(self) -> str:
        """``SkillResult.processor``: "checkpoint: BertTokenizerFast", "trained: ... (why)"."""
        text = f"{self.source}: {type(self.value).__name__}"
        return f"{text} ({self.note})" if self.note else text


def _has_any(source: Any, names: tuple[str, ...]) -> bool:
    return (isinstance(source, (str, Path)) and source != "tiny"
            and any((Path(source) / name).exists() for name in names))  # fmt: skip


# ---- text ------------------------------------------------------------------------------------
def corpus_lines() -> list[str]:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def _config_id(config: Any, names: tuple[str, ...], vocab: int) -> int | None:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        if isinstance(value, int) and 0 <= value < vocab:
            return value
    return None


def _special_ids(config: Any, vocab: int, scheme: int) -> dict[str, tuple[str, int]]:
    """Each special token's spelling and id: the config's id where it names one (two specials
    sharing an id share a spelling, as GPT-2's bos and eos do), else the lowest free id."""
    taken: dict[int, str] = {}
    chosen: dict[str, tuple[str, int]] = {}
    for name, (attributes, *spellings) in SPECIALS.items():
        wanted = _config_id(config, attributes, vocab)
        if wanted is not None:
            spelling = taken.setdefault(wanted, spellings[scheme])
            chosen[name] = (spelling, wanted)
    free = (i for i in range(vocab) if i not in taken)
    for name, (_, *spellings) in SPECIALS.items():
        if name not in chosen:
            spelling = spellings[scheme]
            chosen[name] = (spelling, next(free))
            taken[chosen[name][1]] = spelling
    return chosen


def learn_merges(words: dict[tuple[str, ...], int], budget: int,
                 join: Any = lambda a, b: a + b) -> list[tuple[str, str]]:  # fmt: skip
    """Byte-pair merges over ``words`` (symbol tuples -> count), most frequent pair first, ties
    broken by the pair itself, so the same corpus always gives the same merges.  (The
    ``tokenizers`` trainers break ties by ids assigned in hash-map order, which differs between
    processes.)  Stops after ``budget`` merges or when no pair occurs twice."""
    merges: list[tuple[str, str]] = []
    words = dict(words)
    while len(merges) < budget:
        pairs: dict[tuple[str, str], int] = {}
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] = pairs.get(pair, 0) + count
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        if pairs[best] < 2:
            break
        merges.append(best)
        merged = join(*best)
        rewritten: dict[tuple[str, ...], int] = {}
        for word, count in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            rewritten[tuple(out)] = rewritten.get(tuple(out), 0) + count
        words = rewritten
    return merges


def _word_counts(tokenizer: Any, prefix: str | None) -> dict[tuple[str, ...], int]:
    """The corpus's words as the tokenizer's normalizer and pre-tokenizer see them, spelled as
    symbols (WordPiece marks every symbol after a word's first with ``prefix``)."""
    counts: dict[tuple[str, ...], int] = {}
    for line in corpus_lines():
        text = tokenizer.normalizer.normalize_str(line) if tokenizer.normalizer else line
        for word, _ in tokenizer.pre_tokenizer.pre_tokenize_str(text):
            symbols = tuple(word[:1]) + tuple((prefix or "") + c for c in word[1:])
            counts[symbols] = counts.get(symbols, 0) + 1
    return counts


@functools.lru_cache(maxsize=32)
def _trained(kind: str, vocab: int, specials: tuple[tuple[str, str, int], ...],
             model_inputs: tuple[str, ...], max_length: int) -> Any:  # fmt: skip
    """Learn subwords from the corpus (``learn_merges``) and wrap a fast tokenizer whose ids fit
    ``vocab``, with every special token at its given id."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    spelled = {name: spelling for name, spelling, _ in specials}
    by_id = {token_id: spelling for _, spelling, token_id in specials}
    learned_size = vocab - len(by_id)
    if kind == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(unk_token=spelled["unk_token"]))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        words = _word_counts(tokenizer, "##")
        alphabet = sorted({symbol for word in words for symbol in word})
        merges = learn_merges(words, learned_size - len(alphabet), lambda a, b: a + b[2:])
        tokens = alphabet + [a + b[2:] for a, b in merges]
    else:
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        words = _word_counts(tokenizer, None)
        alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())  # every byte: any text spells
        merges = learn_merges(words, learned_size - len(alphabet))
        tokens = alphabet + [a + b for a, b in merges]
    # Lay the tokens out around the specials' ids, in the order they were learned.
    free = iter(i for i in range(vocab) if i not in by_id)
    ids = {spelling: token_id for token_id, spelling in by_id.items()}
    for token in dict.fromkeys(tokens):
        ids[token] = next(free)
    if kind == "wordpiece":
        tokenizer.model = models.WordPiece(vocab=ids, unk_token=spelled["unk_token"])
        tokenizer.decoder = decoders.WordPiece()
        cls, sep = spelled["cls_token"], spelled["sep_token"]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
            special_tokens=[(cls, ids[cls]), (sep, ids[sep])],
        )
    else:
        tokenizer.model = models.BPE(vocab=ids, merges=merges)
        tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(sorted(by_id.values()))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=max_length, model_input_names=list(model_inputs),
        **spelled,
    )  # fmt: skip


def trained_tokenizer(skill: Any) -> Processor:
    """A tokenizer for a model that ships none, or the byte tokenizer when its vocabulary is too
    small to train one (the note says so)."""
    from .inputs import ByteTokenizer

    vocab = skill.vocab_size() or 0
    kind = "wordpiece" if skill.family in WORDPIECE_FAMILIES else "bpe"
    if vocab < (MIN_WORDPIECE_VOCAB if kind == "wordpiece" else MIN_BPE_VOCAB):
        return Processor(ByteTokenizer(vocab or 256), "byte",
                         f"byte tokenizer (last resort): a vocabulary of {vocab} is too small to "
                         f"train a {kind} tokenizer")  # fmt: skip
    scheme = 0 if kind == "wordpiece" else 1
    specials = _special_ids(skill.model.config, vocab, scheme)
    model_inputs = tuple(n for n in ("input_ids", "token_type_ids", "attention_mask")
                         if n in skill.input_names) or ("input_ids",)  # fmt: skip
    tokenizer = _trained(kind, vocab, tuple((n, s, i) for n, (s, i) in specials.items()),
                         model_inputs, int(skill.max_positions() or 512))  # fmt: skip
    return Processor(tokenizer, "trained",
                     f"{kind} tokenizer trained on skillmill's corpus for {vocab} ids: the "
                     "model ships none")  # fmt: skip


# A CTC head's vocabulary is characters (wav2vec2's 32: specials, a word delimiter, A-Z, ').
CTC_CHARACTERS = ("<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ")


def character_tokenizer(skill: Any) -> Processor:
    """A CTC model's tokenizer: its vocabulary's first ids spelled as characters, as
    wav2vec2-style checkpoints ship them (Wav2Vec2CTCTokenizer), written to a temporary file."""
    import json
    import tempfile

    from transformers import Wav2Vec2CTCTokenizer

    vocab = min(skill.vocab_size() or len(CTC_CHARACTERS), len(CTC_CHARACTERS))
    pad = _config_id(skill.model.config, ("pad_token_id",), vocab)
    symbols = list(CTC_CHARACTERS[:vocab])
    if pad not in (None, 0):  # the blank the CTC loss was built with is the pad token
        symbols[0], symbols[pad] = symbols[pad], symbols[0]
    with tempfile.TemporaryDirectory(prefix="skillmill-ctc-") as folder:
        path = Path(folder) / "vocab.json"
        path.write_text(json.dumps({s: i for i, s in enumerate(symbols)}), encoding="utf-8")
        tokenizer = Wav2Vec2CTCTokenizer(str(path))
    return Processor(tokenizer, "defaults",
                     f"a {vocab}-character CTC vocabulary (wav2vec2's): the model ships none")


def load_tokenizer(skill: Any) -> Processor:
    source = skill.model_source
    if _has_any(source, TOKENIZER_FILES):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=True)
        return Processor(tokenizer, "checkpoint")
    if skill.model_class_name.endswith("ForCTC"):
        return character_tokenizer(skill)
    return trained_tokenizer(skill)


# ---- images and audio ------------------------------------------------------------------------
def _processor_class(names: Any) -> type | None:
    """The class a mapping entry names: a name, or {"torchvision": ..., "pil": ...}."""
    import transformers

    candidates = [names] if isinstance(names, str) else [
        names.get(k) for k in ("torchvision", "pil")] if isinstance(names, dict) else list(names or ())
    for name in candidates:
        if name:
            try:
                return getattr(transformers, name)
            except (AttributeError, ImportError, RuntimeError):
                continue
    return None


def _mapped(mapping: Any, model_type: str) -> Any:
    """The mapping's entry for a model type, or for the composite model a tower belongs to
    (``clip_vision_model`` uses CLIP's image processor)."""
    for suffix in ("", "_vision_model", "_audio_model", "_vision", "_audio", "_encoder"):
        if model_type.endswith(suffix):
            found = mapping.get(model_type[: len(model_type) - len(suffix)] if suffix else model_type)
            if found:
                return found
    return None


def _square(size: Any) -> tuple[int, int] | None:
    if isinstance(size, int) and not isinstance(size, bool):
        return size, size
    if isinstance(size, (list, tuple)) and len(size) >= 2:
        return int(size[-2]), int(size[-1])
    return None


def _field(size: Any, key: str) -> Any:
    return size.get(key) if isinstance(size, dict) else getattr(size, key, None)


def _sized_image_processor(cls: type, config: Any) -> Any:
    """The class with its defaults, resized to the config's image size the way its own size
    is spelled (height/width, or a shortest edge then a centre crop)."""
    default = cls()
    vision = getattr(config, "vision_config", None) or config
    side = _square(getattr(vision, "image_size", None))
    if side is None:
        return default
    height, width = side
    kwargs: dict[str, Any] = {}
    size = getattr(default, "size", None)
    if size is not None and _field(size, "height"):
        kwargs["size"] = {"height": height, "width": width}
    elif size is not None and _field(size, "shortest_edge"):
        kwargs["size"] = {"shortest_edge": min(height, width)}
        if _field(size, "longest_edge"):
            kwargs["size"]["longest_edge"] = max(height, width)
    elif size is not None and _field(size, "longest_edge"):  # SAM: longest edge, then pad
        kwargs["size"] = {"longest_edge": max(height, width)}
    for name in ("crop_size", "pad_size"):
        if getattr(default, name, None) is not None:
            kwargs[name] = {"height": height, "width": width}
    return cls(**kwargs) if kwargs else default


def _sized_feature_extractor(cls: type, config: Any) -> Any:
    """The class with its defaults, at the config's mel-bin count; a Whisper-style extractor's
    fixed window is cut to what the encoder's positions hold (two frames per position)."""
    audio = getattr(config, "audio_config", None) or getattr(config, "encoder_config", None) or config
    accepted = cls.__init__.__code__.co_varnames
    kwargs: dict[str, Any] = {}
    bins = getattr(audio, "num_mel_bins", None) or getattr(config, "num_mel_bins", None)
    if isinstance(bins, int):
        kwargs.update({k: bins for k in ("feature_size", "num_mel_bins") if k in accepted})
    length = getattr(config, "max_length", None)
    if isinstance(length, int) and "max_length" in accepted:
        kwargs["max_length"] = length
    try:
        extractor = cls(**kwargs)
    except (TypeError, ValueError):
        extractor = cls()
    positions = getattr(audio, "max_source_positions", None)
    if isinstance(positions, int) and hasattr(extractor, "nb_max_frames") and hasattr(extractor, "n_samples"):
        extractor.nb_max_frames = 2 * positions
        extractor.n_samples = extractor.nb_max_frames * extractor.hop_length
    return extractor


def load_image_processor(skill: Any) -> Processor | None:
    """The checkpoint's image processor, or the model type's class with its defaults at the
    config's image size; None when the model type has no image processor class."""
    source = skill.model_source
    if _has_any(source, IMAGE_PROCESSOR_FILES):
        from transformers import AutoImageProcessor

        value = AutoImageProcessor.from_pretrained(str(source), local_files_only=True)
        return Processor(value, "checkpoint")
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES

    cls = _processor_class(_mapped(IMAGE_PROCESSOR_MAPPING_NAMES, skill.model_type))
    if cls is None:
        return None
    return Processor(_sized_image_processor(cls, skill.model.config), "defaults",
                     f"{cls.__name__} with its defaults (the model ships no preprocessor_config.json)")


def load_feature_extractor(skill: Any) -> Processor | None:
    """The checkpoint's feature extractor, or the model type's class with its defaults and the
    config's mel-bin count; None when the model type has none."""
    source = skill.model_source
    if _has_any(source, FEATURE_EXTRACTOR_FILES):
        from transformers import AutoFeatureExtractor

        value = AutoFeatureExtractor.from_pretrained(str(source), local_files_only=True)
        return Processor(value, "checkpoint")
    from transformers.models.auto.feature_extraction_auto import FEATURE_EXTRACTOR_MAPPING_NAMES

    cls = _processor_class(_mapped(FEATURE_EXTRACTOR_MAPPING_NAMES, skill.model_type))
    if cls is None:
        return None
    value = _sized_feature_extractor(cls, skill.model.config)
    return Processor(value, "defaults",
                     f"{cls.__name__} with its defaults (the model ships no preprocessor_config.json)")


def resample(wave: Any, from_rate: int, to_rate: int) -> Any:
    """A waveform at ``to_rate``: polyphase resampling (scipy), exact for integer rate ratios."""
    import math

    import numpy as np

    if from_rate == to_rate:
        return wave
    if from_rate <= 0 or to_rate <= 0:
        raise SkillInputError(f"sampling rates must be positive, got {from_rate} and {to_rate}")
    try:
        from scipy.signal import resample_poly
    except ImportError:
        raise SkillInputError(
            f"audio at {from_rate} Hz needs resampling to the model's {to_rate} Hz and scipy is "
            "not installed; resample it first"
        ) from None
    divisor = math.gcd(int(from_rate), int(to_rate))
    return resample_poly(wave, int(to_rate) // divisor, int(from_rate) // divisor).astype(np.float32)
