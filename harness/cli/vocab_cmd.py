"""``fusebench vocab expand`` and ``vocab train``: EEVE-style Korean vocabulary expansion."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fusion.vocab.expand import ExpandOptions

app = typer.Typer(help="Korean vocabulary expansion (EEVE).", no_args_is_help=True)
_D = ExpandOptions()
_T = "Token selection"


@app.command("expand")
def expand_command(
    model: Annotated[str, typer.Option(help="Local model directory or Hub id.")],
    corpus: Annotated[
        Path, typer.Option(help="Korean corpus: .jsonl (one object per line) or text lines.")
    ],
    output: Annotated[Path, typer.Option(help="Directory for the expanded model.")],
    add: Annotated[int, typer.Option(min=1, help="Add at most this many tokens.")] = _D.add,
    min_frequency: Annotated[
        int,
        typer.Option(
            min=1, help="Uses in the corpus a token needs to be kept.", rich_help_panel=_T
        ),
    ] = _D.min_frequency,
    train_vocab_size: Annotated[
        int,
        typer.Option(
            min=0,
            help="Size of the tokenizer trained on the corpus (0: 2 x add + 1000).",
            rich_help_panel=_T,
        ),
    ] = _D.train_vocab_size,
    text_field: Annotated[str, typer.Option(help="JSONL field holding the text.")] = _D.text_field,
    max_lines: Annotated[
        int | None, typer.Option(help="Read at most this many texts from the corpus.")
    ] = _D.max_lines,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output directory.")] = False,
    trust_remote_code: Annotated[
        bool, typer.Option(help="Run model code from the Hub.")
    ] = _D.trust_remote_code,
) -> None:
    """Add frequent Korean tokens missing from MODEL's vocabulary and initialise their embeddings.

    New input rows: the mean of the old sub-tokens spelling the token; new output rows: the
    output row of its first sub-token. Writes the model, its tokenizer and
    vocab_expansion.json (added tokens, their row ids, tokens per 1,000 Korean characters
    before and after).
    """
    from fusion.vocab.expand import expand

    options = ExpandOptions(add=add, min_frequency=min_frequency, text_field=text_field,
                            train_vocab_size=train_vocab_size, max_lines=max_lines,
                            trust_remote_code=trust_remote_code)  # fmt: skip
    report = expand(model, corpus, output, options, overwrite=overwrite)
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

    pipeline.vocab_train(load_vocab_config(config), nproc=nproc, report=cli_reporter())
