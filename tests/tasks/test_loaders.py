"""Every benchmark loads from the original files into the Hub schema, row for row."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.datadir import ENV_VAR, data_dir
from tasks.errors import TaskDataError
from tasks.loaders import BENCHMARKS, load_benchmark, read_tsv

EXPECTED_ROWS = {
    "kobest_boolq": {"train": 3665, "validation": 700, "test": 1404},
    "kobest_copa": {"train": 3076, "validation": 500, "test": 1000},
    "kobest_hellaswag": {"train": 2029, "validation": 500, "test": 500},
    "kobest_sentineg": {"train": 3649, "validation": 400, "test": 397},
    "kobest_wic": {"train": 3318, "validation": 610, "test": 1260},
    "nsmc": {"test": 50000},
    "korunsmile": {"train": 15005, "valid": 3737},
}
HUB_FIELDS = {
    "kobest_boolq": {"paragraph", "question", "label"},
    "kobest_copa": {"premise", "question", "alternative_1", "alternative_2", "label"},
    "kobest_hellaswag": {"context", "ending_1", "ending_2", "ending_3", "ending_4", "label"},
    "kobest_sentineg": {"sentence", "label"},
    "kobest_wic": {"word", "context_1", "context_2", "label"},
    "nsmc": {"id", "document", "label"},
    "korunsmile": {"문장", "labels"},
}


def _raw_data_lines(path: Path) -> int:
    """Rows in a raw file counted independently of the loader: non-empty lines minus header."""
    lines = path.read_text(encoding="utf-8").split("\n")
    return sum(1 for line in lines if line.strip()) - 1


@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_row_counts_match_the_raw_files(name: str, data_root: Path) -> None:
    loaded = load_benchmark(name, data_root)
    assert {s: len(loaded[s]) for s in loaded} == EXPECTED_ROWS[name]
    for split, relative in BENCHMARKS[name].local_files.items():
        assert len(loaded[split]) == _raw_data_lines(data_root / relative)


@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_hub_schema(name: str, data_root: Path) -> None:
    loaded = load_benchmark(name, data_root)
    for split in loaded:
        assert set(loaded[split].column_names) == HUB_FIELDS[name]


def test_label_quirks_are_normalised(data_root: Path) -> None:
    boolq = load_benchmark("kobest_boolq", data_root)
    # test.tsv spells booleans TRUE/True/FALSE/False: 705 true, 699 false in total.
    assert sum(boolq["test"]["label"]) == 348 + 357
    assert boolq["validation"][0]["label"] == 0  # "False" in dev.tsv row 1
    copa = load_benchmark("kobest_copa", data_root)
    assert set(copa["test"]["label"]) == {0, 1}  # 1/2 in the file
    assert copa["validation"][0]["label"] == 1  # Answer 2 -> second alternative
    wic = load_benchmark("kobest_wic", data_root)
    assert sum(wic["test"]["label"]) == 331 + 284
    sentineg = load_benchmark("kobest_sentineg", data_root)
    # test.tsv: the negated text and label, not the *_origin columns.
    assert sentineg["test"][0] == {"sentence": "택배사 정말 마음에 듬", "label": 1}
    unsmile = load_benchmark("korunsmile", data_root)
    assert len(unsmile["train"][0]["labels"]) == 10
    assert unsmile["train"][0]["labels"][9] == 1  # the first training row is clean


def test_malformed_row_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "kobest_v1" / "boolq" / "test.tsv"
    bad.parent.mkdir(parents=True)
    bad.write_text("ID\tText\tQuestion\tAnswer\n1\tp\tq\tTrue\n2\tp\tq\tmaybe\n", encoding="utf-8")
    with pytest.raises(TaskDataError, match=r"test\.tsv:3: column 'Answer'.*'maybe'"):
        list(read_tsv(bad, BENCHMARKS["kobest_boolq"].convert))
    bad.write_text("ID\tText\tQuestion\tAnswer\n1\tp\tTrue\n", encoding="utf-8")
    with pytest.raises(TaskDataError, match=r"test\.tsv:2: 3 tab-separated fields, header has 4"):
        list(read_tsv(bad, BENCHMARKS["kobest_boolq"].convert))


def test_missing_file_in_data_dir_is_named(tmp_path: Path) -> None:
    with pytest.raises(TaskDataError, match=r"nsmc/ratings_test\.txt: missing"):
        load_benchmark("nsmc", tmp_path)


def test_data_dir_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert data_dir() == tmp_path.resolve()
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nope"))
    with pytest.raises(TaskDataError, match="no such directory"):
        data_dir()


def test_no_data_dir_and_no_hub_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "")  # force the Hub; HF_HUB_OFFLINE=1 in the tests
    with pytest.raises(TaskDataError, match=r"no local data directory .* skt/kobest_v1 \(boolq\)"):
        load_benchmark("kobest_boolq")
