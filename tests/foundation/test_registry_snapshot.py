"""The committed registry snapshot: counts, fields, determinism."""

from skillmill.registry.snapshot import dump, parse

MODALITIES = {"text", "vision", "video", "audio", "multimodal", "time-series", "other"}


def test_counts_match_transformers_5_23(registry):
    assert registry.transformers_version == "5.23.0"
    assert len(registry.base_classes) == 605
    assert len(registry.classes) >= 1738
    assert sum(not r.in_auto_mapping for r in registry.classes.values()) >= 194


def test_every_class_has_the_fields_templates_need(registry):
    for name, record in registry.classes.items():
        assert record.model_type and record.config_class, name
        assert record.modality in MODALITIES, name
        assert record.family, name
        assert record.main_input_names, name
        assert "cpu" in record.targets, name
        assert record.targets == sorted(record.targets, key=record.targets.index)


def test_classification_from_signature_and_mappings(registry):
    expect = {
        "BertModel": ("text", "encoder"), "GPT2Model": ("text", "decoder"),
        "T5Model": ("text", "encoder-decoder"), "ViTModel": ("vision", "vision-encoder"),
        "WhisperModel": ("audio", "encoder-decoder"), "Wav2Vec2Model": ("audio", "audio-encoder"),
        "CLIPModel": ("multimodal", "multimodal-encoder"),
        "LlavaModel": ("multimodal", "multimodal-decoder"),
        "VideoMAEModel": ("video", "video-encoder"), "PatchTSTModel": ("time-series", "time-series"),
    }
    for name, (modality, family) in expect.items():
        record = registry.get(name)
        assert (record.modality, record.family) == (modality, family), name
    assert "text-generation" in registry.get("GPT2LMHeadModel").tasks
    assert "fill-mask" in registry.get("BertForMaskedLM").tasks


def test_snapshot_round_trips_byte_for_byte(registry):
    from skillmill.registry.snapshot import SNAPSHOT_PATH

    text = SNAPSHOT_PATH.read_text(encoding="utf-8")
    again = parse(text)
    assert again.classes == registry.classes
    # Re-dumping the parsed records reproduces the file exactly (deterministic order).
    assert dump(again.transformers_version, again.classes, again.base_classes) == text


def test_unknown_class_suggests_close_names(registry):
    import pytest

    with pytest.raises(KeyError, match="BertModel"):
        registry.get("BertModle")
