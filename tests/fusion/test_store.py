"""The top-k store: round trip, resume, sharding across writers, integrity checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fusion.store import (
    PAD_ID,
    SequenceTopK,
    StoreError,
    StoreManifest,
    StoreWriter,
    TopKStore,
    check_same_corpus,
    mean_gold_nll,
    shard_name,
)

K = 3


def _row(row_id: int, length: int, seed: int = 0) -> SequenceTopK:
    rng = np.random.default_rng(row_id + 100 * seed)
    logits = rng.normal(size=(length, 8)).astype(np.float32)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ids = np.argsort(-logp, axis=-1)[:, :K].astype(np.int32)
    nll = rng.uniform(0.1, 5, size=length).astype(np.float16)
    nll[-1] = 0
    return SequenceTopK(
        row_id=row_id,
        token_ids=rng.integers(0, 8, size=length).astype(np.int32),
        topk_ids=ids,
        topk_logprobs=np.take_along_axis(logp, ids, -1).astype(np.float16),
        nll=nll,
        mean_nll=mean_gold_nll(nll),
    )


def _manifest(num_rows: int = 5, **update) -> StoreManifest:
    base = dict(
        model="m",
        tokenizer_fingerprint="tok",
        vocab_size=8,
        k=K,
        corpus_fingerprint="corpus",
        num_rows=num_rows,
        rows_per_shard=2,
    )
    return StoreManifest(**{**base, **update})


def _write(path: Path, rows: list[SequenceTopK], manifest: StoreManifest) -> StoreWriter:
    writer = StoreWriter(path, manifest)
    for index in range(manifest.num_shards):
        span = writer.shard_rows(index)
        writer.write_shard(index, [r for r in rows if r.row_id in span])
    writer.finalize()
    return writer


def test_round_trip_is_exact_and_unpadded(tmp_path: Path) -> None:
    rows = [_row(i, length) for i, length in enumerate([4, 1, 7, 3, 2])]
    _write(tmp_path, rows, _manifest())
    store = TopKStore(tmp_path)
    assert len(store) == 5 and store.manifest.positions == 17
    assert store.manifest.num_shards == 3
    assert list(store.row_ids()) == [0, 1, 2, 3, 4]
    for want, got in zip(rows, store, strict=True):
        assert got.row_id == want.row_id
        np.testing.assert_array_equal(got.token_ids, want.token_ids)
        np.testing.assert_array_equal(got.topk_ids, want.topk_ids)
        np.testing.assert_array_equal(got.topk_logprobs, want.topk_logprobs)
        np.testing.assert_array_equal(got.nll, want.nll)
        assert got.mean_nll == pytest.approx(want.mean_nll, rel=1e-6)
    on_disk = sum(p.stat().st_size for p in tmp_path.glob("*.safetensors"))
    # 66 B per position at k=3 is 4+12+6+2 = 24 B; headers and per-sequence arrays on top.
    assert on_disk < 17 * 24 + 3 * 1024


def test_rerun_skips_finished_shards_and_other_writers_fill_theirs(tmp_path: Path) -> None:
    rows = [_row(i, 3) for i in range(5)]
    first = StoreWriter(tmp_path, _manifest())
    first.write_shard(0, rows[0:2])
    with pytest.raises(StoreError, match="shard 1 is not written"):
        first.finalize()
    second = StoreWriter(tmp_path, _manifest())  # another rank, or a rerun
    assert second.done(0) and not second.done(1)
    second.write_shard(1, rows[2:4])
    second.write_shard(2, rows[4:5])
    second.finalize()
    assert list(TopKStore(tmp_path).row_ids()) == [0, 1, 2, 3, 4]


def test_other_settings_are_refused_not_mixed(tmp_path: Path) -> None:
    StoreWriter(tmp_path, _manifest())
    with pytest.raises(StoreError, match="tokenizer_fingerprint"):
        StoreWriter(tmp_path, _manifest(tokenizer_fingerprint="other"))


def test_nonfinite_rows_are_excluded_and_listed(tmp_path: Path) -> None:
    rows = [_row(i, 3) for i in range(5)]
    rows[1].topk_logprobs[0, 0] = np.nan
    rows[3].nll[0] = np.inf
    _write(tmp_path, rows, _manifest())
    store = TopKStore(tmp_path)
    assert list(store.row_ids()) == [0, 2, 4]
    assert set(store.manifest.excluded) == {1, 3}
    assert "NaN" in store.manifest.excluded[1]


def test_padding_entries_may_be_minus_inf(tmp_path: Path) -> None:
    row = _row(0, 2)
    row.topk_ids[:, 1:] = PAD_ID
    row.topk_logprobs[:, 1:] = -np.inf
    _write(tmp_path, [row], _manifest(num_rows=1))
    assert TopKStore(tmp_path).manifest.excluded == {}


def test_corrupt_shard_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, [_row(i, 3) for i in range(5)], _manifest())
    shard = tmp_path / f"{shard_name(1)}.safetensors"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    store = TopKStore(tmp_path)
    store.sequence(0)  # shard 0 is fine
    with pytest.raises(StoreError, match="sha256 does not match"):
        store.sequence(2)


def test_unfinished_and_mismatched_stores_are_refused(tmp_path: Path) -> None:
    StoreWriter(tmp_path / "a", _manifest())
    with pytest.raises(StoreError, match="unfinished"):
        TopKStore(tmp_path / "a")
    with pytest.raises(StoreError, match="not a top-k store"):
        TopKStore(tmp_path / "missing")
    _write(tmp_path / "b", [_row(i, 2) for i in range(5)], _manifest())
    _write(tmp_path / "c", [_row(i, 2) for i in range(5)], _manifest(corpus_fingerprint="x"))
    b, c = TopKStore(tmp_path / "b"), TopKStore(tmp_path / "c")
    with pytest.raises(StoreError, match="different corpora"):
        check_same_corpus([b, c])
    with pytest.raises(StoreError, match="another tokenizer"):
        b.check_tokenizer("zzz", "tiny")


@pytest.mark.parametrize(("vocab_size", "width"), [(8, 2), (65_534, 2), (152_064, 3), (2**24, 4)])
def test_ids_are_stored_narrow_and_read_back_as_int32(
    tmp_path: Path, vocab_size: int, width: int
) -> None:
    rows = [_row(i, 4) for i in range(5)]
    for row in rows:
        row.token_ids = row.token_ids + (vocab_size - 8)
        row.topk_ids = np.where(row.topk_ids >= 0, row.topk_ids + (vocab_size - 8), PAD_ID)
        row.topk_ids[0, -1] = PAD_ID
        row.topk_logprobs[0, -1] = -np.inf
    _write(tmp_path, rows, _manifest(vocab_size=vocab_size))
    store = TopKStore(tmp_path)
    assert store.manifest.id_bytes == width
    for want, got in zip(rows, store, strict=True):
        assert got.topk_ids.dtype == np.int32 and got.token_ids.dtype == np.int32
        np.testing.assert_array_equal(got.topk_ids, want.topk_ids)
        np.testing.assert_array_equal(got.token_ids, want.token_ids)


def test_caller_excluded_rows_are_listed(tmp_path: Path) -> None:
    rows = [_row(i, 3) for i in range(5)]
    writer = StoreWriter(tmp_path, _manifest())
    writer.write_shard(0, rows[:1], excluded={1: "excluded elsewhere"})
    with pytest.raises(StoreError, match="must hold rows"):
        writer.write_shard(1, rows[3:4])
    writer.write_shard(1, rows[2:4])
    writer.write_shard(2, rows[4:])
    assert writer.finalize().excluded == {1: "excluded elsewhere"}
    assert TopKStore(tmp_path).row_ids().tolist() == [0, 2, 3, 4]


def test_ragged_store_keeps_each_position_s_own_entries(tmp_path: Path) -> None:
    """The fused store's layout: a one-hot position costs one entry, a mixture its union."""
    rows = []
    rng = np.random.default_rng(0)
    for i, length in enumerate([4, 1, 7, 3, 2]):
        row = _row(i, length)
        width = 6
        ids = np.full((length, width), PAD_ID, np.int32)
        lp = np.full((length, width), -np.inf, np.float16)
        for p in range(length):
            used = int(rng.integers(1, width + 1))
            ids[p, :used] = rng.permutation(8)[:used]
            lp[p, :used] = -rng.uniform(0, 5, used)
        row.topk_ids, row.topk_logprobs = ids, lp
        rows.append(row)
    _write(tmp_path, rows, _manifest(k=6, layout="ragged"))
    store = TopKStore(tmp_path)
    for want, got in zip(rows, store, strict=True):
        np.testing.assert_array_equal(got.topk_ids, want.topk_ids)
        np.testing.assert_array_equal(got.topk_logprobs, want.topk_logprobs)
        np.testing.assert_array_equal(got.token_ids, want.token_ids)
    entries = sum(int((r.topk_ids != PAD_ID).sum()) for r in rows)
    on_disk = sum(p.stat().st_size for p in tmp_path.glob("*.safetensors"))
    # 2 (count) + 2 (id) + 2 (nll) per position and 4 per entry, plus headers
    assert on_disk < 17 * 6 + entries * 4 + 3 * 1024
    # entries must come first: a used entry after an unused one is refused, not stored
    bad = _row(0, 2)
    bad.topk_ids = np.array([[PAD_ID, 1], [2, PAD_ID]], np.int32)
    bad.topk_logprobs = np.array([[-np.inf, -1], [-1, -np.inf]], np.float16)
    assert "entries first" in bad.problem(6, ragged=True)
