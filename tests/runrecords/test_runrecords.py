"""The bottom package: atomic writes, the journal, JSON Lines, settings differences, errors."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from runrecords.atomic import atomic_directory, write_json_atomic, write_text_atomic
from runrecords.errors import Interrupted, OutputExists, UserError
from runrecords.journal import append_journal, read_journal
from runrecords.jsonl import json_lines
from runrecords.settings import Difference, differences, first_difference


def test_write_text_atomic_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "new" / "a.json"
    write_json_atomic(target, {"b": "한국어", "n": 1})
    write_text_atomic(target, "again\n")
    assert target.read_text(encoding="utf-8") == "again\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]


def test_atomic_directory_swaps_in_on_success_only(tmp_path: Path) -> None:
    output = tmp_path / "model"
    with atomic_directory(output) as scratch:
        (scratch / "weights").write_text("1")
        assert not output.exists()
    assert (output / "weights").read_text() == "1"
    with pytest.raises(RuntimeError), atomic_directory(output) as scratch:
        (scratch / "weights").write_text("2")
        raise RuntimeError("killed mid-save")
    assert (output / "weights").read_text() == "1"  # the old one, untouched
    with atomic_directory(output) as scratch:
        (scratch / "other").write_text("3")
    assert sorted(p.name for p in output.iterdir()) == ["other"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no scratch, no stale


def test_atomic_directory_without_overwrite_refuses_a_full_output(tmp_path: Path) -> None:
    output = tmp_path / "model"
    output.mkdir()
    with atomic_directory(output, overwrite=False) as scratch:  # empty: fine
        (scratch / "x").write_text("x")
    refused = r"model: exists and is not empty \(use --overwrite\)"
    with pytest.raises(OutputExists, match=refused), atomic_directory(output, overwrite=False):
        pass


@pytest.mark.parametrize("overwrite", [False, True])
def test_atomic_directory_refuses_a_file_in_the_way(tmp_path: Path, overwrite: bool) -> None:
    """An output that is a file, or lies under one: OutputExists (one line), the file kept;
    before, NotADirectoryError, or with overwrite the file silently replaced."""
    file = tmp_path / "model"
    file.write_text("mine")
    for output in (file, file / "sub"):
        with (
            pytest.raises(
                OutputExists, match=re.escape(f"{output}: {file} is a file, not a directory")
            ),
            atomic_directory(output, overwrite=overwrite),
        ):
            pass
    assert file.read_text() == "mine" and [p.name for p in tmp_path.iterdir()] == ["model"]


def test_journal_drops_a_torn_last_line(tmp_path: Path) -> None:
    part = tmp_path / ".out.jsonl.part"
    lock = threading.Lock()
    append_journal(part, {"id": 1}, lock)
    append_journal(part, {"id": 2, "text": "a\u2028b"}, lock)
    with part.open("a", encoding="utf-8") as handle:
        handle.write('{"id": 3, "te')  # killed mid-write
    assert read_journal(part) == [{"id": 1}, {"id": 2, "text": "a\u2028b"}]
    assert read_journal(tmp_path / "missing") == []


def test_json_lines_numbers_lines_and_names_the_bad_one() -> None:
    lines = ['{"a": 1}', "", "[2]", ""]
    assert list(json_lines(lines, lambda n, why: ValueError(n, why))) == [(1, {"a": 1}), (3, [2])]
    with pytest.raises(ValueError, match=r"f.jsonl:2: not JSON \(Expecting value\)"):
        list(json_lines(["{}", "nope"], lambda n, why: ValueError(f"f.jsonl:{n}: {why}")))


def test_differences_in_recorded_or_sorted_order() -> None:
    old = {"model": "a", "limit": 1, "seeds": {"x": 1}}
    new = {"model": "b", "limit": 2, "seeds": {"x": 1}, "extra": None}
    assert [d.key for d in differences(old, new)] == ["model", "limit", "extra"]
    assert [d.key for d in differences(old, new, sort=True)] == ["extra", "limit", "model"]
    assert [d.key for d in differences(old, new, ignore={"model"})] == ["limit", "extra"]
    assert differences(old, dict(old)) == []


def test_first_difference_goes_into_nested_settings() -> None:
    old = {"train": {"lr": 1e-5, "steps": 10}, "world_size": 1}
    new = {"train": {"lr": 2e-5, "steps": 10}, "world_size": 1}
    assert first_difference(old, new, nested=True) == "train.lr: 1e-05 there, 2e-05 now"
    assert first_difference(old, new) == (
        "train: {'lr': 1e-05, 'steps': 10} there, {'lr': 2e-05, 'steps': 10} now"
    )
    assert first_difference(old, old) == "unknown difference"
    assert differences({"k": None}, {}) == [Difference("k", None, None)]  # missing is a change


def test_every_user_error_is_one_class_for_the_cli() -> None:
    from fusion.errors import FusionError
    from harness.errors import HarnessError
    from judges.errors import JudgeError
    from reports.errors import ReportError
    from tasks.errors import TaskDataError

    for error in (FusionError, HarnessError, JudgeError, ReportError, TaskDataError):
        assert issubclass(error, UserError) and error.exit_code == 2
    assert issubclass(Interrupted, UserError) and Interrupted.exit_code == 130


def test_atomic_directory_gives_private_files_the_umask_mode(tmp_path: Path) -> None:
    """safetensors writes model.safetensors 0600 (issue 27, item 9): a model saved through
    atomic_directory is readable as any other file the process writes."""
    import os

    from runrecords.atomic import _FILE_MODE, atomic_directory

    out = tmp_path / "model"
    with atomic_directory(out) as scratch:
        private = scratch / "model.safetensors"
        private.write_bytes(b"x")
        os.chmod(private, 0o600)
        shared = scratch / "config.json"
        shared.write_text("{}")
        os.chmod(shared, 0o640)
    assert (out / "model.safetensors").stat().st_mode & 0o777 == _FILE_MODE
    assert (out / "config.json").stat().st_mode & 0o777 == 0o640  # not private: kept


def test_a_saved_model_is_not_private(tmp_path: Path) -> None:
    """The real writer: transformers' save_pretrained (safetensors) into atomic_directory, as
    the zoo and the trainer save."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from runrecords.atomic import _FILE_MODE

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=1, n_embd=8, vocab_size=16, n_positions=8))
    with atomic_directory(tmp_path / "m") as scratch:
        model.save_pretrained(scratch)
    assert (tmp_path / "m" / "model.safetensors").stat().st_mode & 0o777 == _FILE_MODE
