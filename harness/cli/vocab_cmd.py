"""``fusebench vocab expand`` and ``vocab train``: EEVE-style Korean vocabulary expansion."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fusion.vocab.expand import ExpandOptions
from harness.cli.options import FromSpec, QuietOption, progress_bars
from runrecords.atomic import check_output_path
from runrecords.lock import hold

app = typer.Typer(help="Korean vocabulary expansion (EEVE).", no_args_is_help=True)
_X = FromSpec(ExpandOptions)
_D = _X.defaults
_T = "Token selection"


@app.command("expand")
def expand_command(
    corpus: Annotated[
        Path, typer.Option(help="Korean corpus: .jsonl (one object per line) or text lines.")
    ],
    output: Annotated[Path, typer.Option(help="Directory for the expanded model.")],
    model: Annotated[
        str | None,
        typer.Argument(
            help="Local model directory or Hub id.", metavar="MODEL", show_default=False
        ),
    ] = None,
    add: Annotated[int, _X.option("add", min=1)] = _D.add,
    min_frequency: Annotated[
        int, _X.option("min_frequency", min=1, rich_help_panel=_T)
    ] = _D.min_frequency,
    train_vocab_size: Annotated[
        int, _X.option("train_vocab_size", min=0, rich_help_panel=_T)
    ] = _D.train_vocab_size,
    text_field: Annotated[str, _X.option("text_field")] = _D.text_field,
    max_lines: Annotated[int | None, _X.option("max_lines")] = _D.max_lines,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output directory.")] = False,
    trust_remote_code: Annotated[bool, _X.option("trust_remote_code")] = _D.trust_remote_code,
    quiet: QuietOption = False,
    model_option: Annotated[
        str | None,
        typer.Option("--model", hidden=True, help="Deprecated: give MODEL as an argument."),
    ] = None,
) -> None:
    """Add frequent Korean tokens missing from MODEL's vocabulary and initialise their embeddings.

    New input rows: the mean of the old sub-tokens spelling the token; new output rows: the
    output row of its first sub-token. Writes the model, its tokenizer and
    vocab_expansion.json (added tokens, their row ids, tokens per 1,000 Korean characters
    before and after).
    """
    from fusion.vocab.expand import expand

    if model is not None and model_option is not None and model != model_option:
        raise typer.BadParameter(
            f"{model!r}, and --model {model_option!r}: give one", param_hint="MODEL"
        )
    model = model or model_option
    if model is None:
        raise typer.BadParameter("required: a local model directory or Hub id", param_hint="MODEL")
    progress_bars(quiet)
    options = ExpandOptions(
        add=add,
        min_frequency=min_frequency,
        text_field=text_field,
        train_vocab_size=train_vocab_size,
        max_lines=max_lines,
        trust_remote_code=trust_remote_code,
    )
    check_output_path(output, directory=True)  # a file in the way: named before the lock
    with hold(output, "fusebench vocab expand"):
        report = expand(model, corpus, output, options, overwrite=overwrite, say=typer.echo)
    typer.echo(
        f"added {len(report['added'])} tokens ({report['rounds']} rounds); tokens per 1,000 "
        f"Korean characters: {report['tokens_per_1k_korean_before']} -> "
        f"{report['tokens_per_1k_korean_after']}"
    )
    typer.echo(f"expanded model: {output}")


@app.command("train")
def train_command(
    config: Annotated[Path, typer.Argument(help="The vocab train YAML config.")],
    nproc: Annotated[
        int, typer.Option(min=1, help="Training processes; >1 starts them through torchrun.")
    ] = 1,
    quiet: QuietOption = False,
) -> None:
    """EEVE's staged training of an expanded model (configs/tiny-vocab-train.yaml).

    Each stage trains its groups (new/all input or output embeddings, transformer layers,
    all) on the CLM objective with the fusion core's DeepSpeed trainer, from the previous
    stage's model, into work_dir/stages/<n>/. Old rows of a partly trainable embedding
    matrix stay bit-identical (under every ZeRO stage). A rerun skips finished stages
    and resumes an interrupted one from its checkpoint.
    """
    from fusion import pipeline
    from fusion.vocab.train import load_vocab_config
    from harness.cli.reporting import cli_reporter

    shown = progress_bars(quiet)
    loaded = load_vocab_config(config)
    with hold(loaded.work_dir, "fusebench vocab train"):
        pipeline.vocab_train(loaded, nproc=nproc, progress=shown, report=cli_reporter())
