"""`generate-skills quantize`: write a quantized .mojomodel with its size / quality / speed
table (the measuring lives in ``measure/quantize.py``)."""

from __future__ import annotations

import json

import click

from skillmill.runtime.precision import QUANTIZED


@click.command()
@click.option("--skill", "class_name", required=True, metavar="CLASS",
              help="The transformers model class of a text encoder, e.g. BertModel.")
@click.option("--model", "model", required=True, metavar="DIR", type=click.Path(exists=True, file_okay=False),
              help="A local checkpoint folder (config, weights, tokenizer).")
@click.option("--scheme", type=click.Choice(QUANTIZED), default="int8", show_default=True,
              help="int8: per-channel symmetric int8 weights; q4_0: 4-bit blocks of 32 with one scale; "
                   "q8_0: int8 blocks of 32 with one scale.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Where to write the quantized .mojomodel (only when the quality gate passes).")
@click.option("--shapes", default="1x16,1x128,32x128", show_default=True,
              help="BATCHxSEQ shapes to time, each variant in its own process; '' for none.")
@click.option("--repeats", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="Timed calls per variant and shape (after two warm-up calls).")
@click.option("--no-ort", is_flag=True, help="Leave out ONNX Runtime's quantize_dynamic anchor.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the report as JSON here.")
def quantize(class_name, model, scheme, out, shapes, repeats, no_ort, json_path):
    """Quantize a checkpoint's Linear weights and show what it costs and gains.

    Writes OUT, the quantized .mojomodel, and prints: each variant's file size against float32,
    quality on the 64 sentences the project ships (minimum cosine of each mean-pooled embedding
    to PyTorch float32's, and the Spearman correlation of the 2,016 pairwise similarities), and
    the median latency per shape, each variant timed in its own process.  ONNX Runtime's
    quantize_dynamic of the same model is measured beside it.  A scheme whose quality misses
    the gate (min cosine >= 0.99, Spearman >= 0.995) is refused: OUT is not written and the
    command exits 1 with the figure and the threshold.
    """
    from skillmill.measure.quantize import format_report, quantize_report
    from skillmill.runtime.errors import SkillError

    try:
        chosen = [tuple(int(v) for v in s.lower().split("x")) for s in shapes.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"{shapes!r}: use BATCHxSEQ, e.g. 1x16,32x128", param_hint="--shapes") from None
    if any(len(s) != 2 or min(s) < 1 for s in chosen):
        raise click.BadParameter(f"{shapes!r}: each shape is two positive integers", param_hint="--shapes")
    try:
        report = quantize_report(class_name, model, scheme, out, shapes=chosen, repeats=repeats,
                                 with_ort=not no_ort, echo=click.echo)  # fmt: skip
    except (SkillError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(format_report(report))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=1)
    if report["refused"]:
        raise SystemExit(1)
    click.echo(f"wrote {out}")
