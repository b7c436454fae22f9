"""Storage: bytes per position of top-k stores at k=10, against the reference's layout.

Extracts tiny-llama (V = 3,000) over real Korean NSMC rows with the real extraction code and
measures the store on disk (shards, sidecars and manifest: every byte). The same positions are
then written with the int32 layout of the first format (4 + 40 + 20 + 2 = 66 B) and, for a
large vocabulary (V = 152,064, Qwen-sized: three-byte ids), through the same StoreWriter, so
the ratios compare like with like. The reference (FuseLLM) stores int64 ids and fp16 logits
in Arrow, padded to 2048 positions: ~100 B per real position plus the padding, and ~420 B per
token after alignment (two sources, float64/int64 lists) -- figures from FUSION_REFERENCE.md,
not re-measured here.

The fused-targets store (ragged layout: each position keeps only its own entries) is measured
too, fusing tiny-gpt2 into tiny-llama with MinCE (at most k entries, one for a one-hot
fallback) and with AvgCE (the whole union of the two models' entries, nothing cut).

    PYTHONPATH=. python bench/store_size.py --rows 256
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def rewrite(store_path: Path, out: Path, vocab_size: int, id_bytes: int | None) -> int:
    """The same positions written with another id width (ids offset into a large vocab)."""
    from fusion.store import StoreManifest, StoreWriter, TopKStore

    store = TopKStore(store_path)
    fields = store.manifest.model_dump(
        exclude={"complete", "shards", "sequences", "positions", "excluded", "id_bytes"}
    )
    manifest = StoreManifest(**{**fields, "vocab_size": vocab_size, "id_bytes": id_bytes})
    writer = StoreWriter(out, manifest)
    shift = vocab_size - store.manifest.vocab_size
    rows = list(store)
    for row in rows:  # real values, ids moved to the top of the larger vocabulary
        row.token_ids = row.token_ids + shift
        row.topk_ids = np.where(row.topk_ids >= 0, row.topk_ids + shift, -1)
    for shard in range(manifest.num_shards):
        writer.write_shard(shard, [r for r in rows if r.row_id in writer.shard_rows(shard)])
    writer.finalize()
    return size(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256)
    args = parser.parse_args()

    import yaml

    from fusion.align.stage import run_align
    from fusion.config import load_config
    from fusion.extract import Rank, extract
    from fusion.zoo import cached_zoo

    zoo = cached_zoo()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        config_file = tmp_path / "fuse.yaml"
        settings = {
            "work_dir": "work",
            "target": {"name": "tiny-llama", "path": str(zoo / "tiny-llama")},
            "sources": [{"name": "tiny-gpt2", "path": str(zoo / "tiny-gpt2")}],
            "corpus": {"shared": "nsmc", "max_rows": args.rows, "max_chars": 2000},
            "extract": {"k": 10, "max_length": 2048, "rows_per_shard": 1000, "batch_size": 16},
            "fuse": {"method": "avg_ce"},
        }
        config_file.write_text(yaml.safe_dump(settings))
        config = load_config(config_file)
        extract(config, Rank(0, 1), progress=False)
        fused = {}
        for method in ("avg_ce", "min_ce"):
            config_file.write_text(yaml.safe_dump({**settings, "fuse": {"method": method}}))
            run_align(load_config(config_file), progress=False, overwrite=True, say=lambda _: None)
            fused[method] = size(config.work_dir / "fused")
            report = json.loads((config.work_dir / "align" / "report.json").read_text())
            fused[method + "_entries"] = report["entries_per_position"]
        store = config.work_dir / "stores" / "tiny-llama"
        manifest = json.loads((store / "manifest.json").read_text())
        positions = manifest["positions"]
        small = size(store)
        wide = rewrite(store, tmp_path / "int32", manifest["vocab_size"], 4)
        large = rewrite(store, tmp_path / "large", 152_064, None)
    print(f"{manifest['sequences']} rows, {positions} positions, k=10, whole store on disk:")
    print(f"  V=3,000 (uint16 ids):          {small / positions:6.1f} B/position")
    print(f"  V=152,064 (3-byte ids):        {large / positions:6.1f} B/position")
    print(f"  int32 ids (first format):      {wide / positions:6.1f} B/position")
    for method in ("min_ce", "avg_ce"):
        print(
            f"  fused store, {method + ':':8s}          {fused[method] / positions:6.1f} B/position "
            f"({fused[method + '_entries']:.1f} entries per position, ragged)"
        )
    print(
        f"ratio int32 / uint16: {wide / small:.2f}x; vs the reference's ~100 B + padding: "
        f"{100 / (small / positions):.1f}x (unpadded), vs ~420 B aligned: "
        f"{420 / (small / positions):.1f}x  (goal <= 64 B)"
    )


if __name__ == "__main__":
    main()
