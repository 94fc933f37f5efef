"""Small seeded HF models for the IR tests, built from configs alone (no hub access)."""

from __future__ import annotations

import torch

TEXT_KW = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=37)  # fmt: skip


def build(kind: str) -> torch.nn.Module:
    import transformers as tf

    torch.manual_seed(0)
    if kind == "bert":
        model = tf.BertModel(tf.BertConfig(**TEXT_KW, attn_implementation="eager"))
    elif kind == "gpt2":
        config = tf.GPT2Config(vocab_size=99, n_embd=32, n_layer=2, n_head=4, bos_token_id=0,
                               eos_token_id=0, attn_implementation="eager")  # fmt: skip
        model = tf.GPT2Model(config)
    elif kind == "llama":
        config = tf.LlamaConfig(**TEXT_KW, num_key_value_heads=2, bos_token_id=0, eos_token_id=0)
        model = tf.LlamaModel(config)
    elif kind == "t5":
        config = tf.T5Config(vocab_size=99, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                             decoder_start_token_id=0, attn_implementation="eager")  # fmt: skip
        model = tf.T5Model(config)
    elif kind == "vit":
        config = tf.ViTConfig(image_size=32, patch_size=8, num_channels=3, **{
            k: v for k, v in TEXT_KW.items() if k != "vocab_size"})  # fmt: skip
        model = tf.ViTModel(config)
    elif kind == "resnet":
        config = tf.ResNetConfig(num_channels=3, embedding_size=16, hidden_sizes=[16, 32],
                                 depths=[1, 1], layer_type="basic")  # fmt: skip
        model = tf.ResNetModel(config)
    else:
        raise KeyError(kind)
    return model.eval()


def inputs(kind: str, batch: int = 2, seq: int = 7, seed: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    if kind in ("vit", "resnet"):
        return {"pixel_values": torch.randn(batch, 3, 32, 32, generator=gen)}
    ids = torch.randint(1, 99, (batch, seq), generator=gen)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    mask[0, -2:] = 0
    feeds = {"input_ids": ids, "attention_mask": mask}
    if kind == "t5":
        feeds["decoder_input_ids"] = torch.randint(1, 99, (batch, max(seq - 2, 2)), generator=gen)
    return feeds


_CONVERTED: dict[str, tuple] = {}


def converted(kind: str) -> tuple:
    """(model, converted graph), exported once per test session: torch.export is the slow part
    of most tests here.  The graph is shared: copy it (optimize_graph does) before changing it."""
    if kind not in _CONVERTED:
        from skillmill.ir.frontends.pytorch import convert_from_pytorch

        model = build(kind)
        _CONVERTED[kind] = (model, convert_from_pytorch(model, inputs(kind)))
    return _CONVERTED[kind]
