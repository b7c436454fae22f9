"""``fusebench fuse chat CONFIG``: FuseChat, pairwise fusion into a pivot then a merge."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def chat_command(
    config: Annotated[Path, typer.Argument(help="The FuseChat YAML config.")],
    nproc: Annotated[
        int, typer.Option("--nproc", min=1, help="Extraction and training processes.")
    ] = 1,
    overwrite: Annotated[
        bool, typer.Option(help="Replace a pair's fused store made with other settings.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Fuse each source into the pivot (extract -> align -> train, one pair at a time), then
    merge the pair targets relative to the pivot (merge.method, VaRM by default).

    Writes work_dir/{corpus,stores} (shared extraction: the pivot once), work_dir/pairs/<source>/
    (align, fused, train/final) and work_dir/merged. A rerun skips finished pairs and a
    finished merge; an interrupted pair resumes from its training checkpoint.
    """
    from fusion.chat import (
        extraction_config,
        link_shared,
        load_chat_config,
        merge_done,
        merge_spec,
        merged_dir,
        pair_config,
    )
    from fusion.merge.run import merge
    from fusion.train.launch import run_training
    from fusion.train.trainer import finished
    from harness.cli.fuse_cmd import _interrupted, _say, do_align, do_extract

    chat = load_chat_config(config)
    pairs = {source.name: pair_config(chat, source) for source in chat.sources}
    finals = {name: finished(pair) for name, pair in pairs.items()}
    if not all(finals.values()):
        do_extract(extraction_config(chat), nproc, progress)
    for number, source in enumerate(chat.sources, start=1):
        label = f"pair {number}/{len(pairs)} ({source.name} -> {chat.pivot.name})"
        if finals[source.name]:
            _say(f"{label}: finished earlier: {finals[source.name]}")
            continue
        _say(f"{label}: align and train")
        link_shared(chat, source)
        do_align(pairs[source.name], overwrite, progress)
        try:
            finals[source.name] = run_training(pairs[source.name], nproc=nproc, resume=True)
        except KeyboardInterrupt:
            raise _interrupted("training") from None
    spec = merge_spec(chat, {name: Path(final) for name, final in finals.items() if final})
    out = merged_dir(chat)
    if merge_done(chat, spec):
        _say(f"merge: finished earlier: {out}")
    else:
        _say(f"merge: {spec.method} of {len(spec.models)} pair targets relative to the pivot")
        merge(spec, out, overwrite=True, progress=progress)
    typer.echo(f"model: {out}")
