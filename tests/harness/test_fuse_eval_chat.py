"""The fusion config's ``evaluate`` section takes eval's chat settings: parsed, checked when
the config is read, handed to every evaluation's spec, and compared with an evaluated run's."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusion.config import ConfigError, load_config
from harness.chat_format import multiturn
from harness.fuse_eval.plan import Subject, changed_settings, eval_spec, make_plan
from reports import rundir


def _config(fuse_config, tmp_path: Path, comment_rows, **evaluate: object) -> Path:
    return fuse_config(tmp_path, comment_rows(4), evaluate={"tasks": ["kobest_boolq"], **evaluate})


def test_the_evaluate_section_passes_chat_settings_to_each_evaluation(
    tmp_path: Path, fuse_config, comment_rows, zoo: Path
) -> None:
    config = load_config(
        _config(
            fuse_config,
            tmp_path,
            comment_rows,
            apply_chat_template="tool_use",
            system_instruction="너는 도우미다.",
        )
    )
    out = tmp_path / "eval" / "base"
    spec = eval_spec(config, make_plan(config), Subject("base", str(zoo / "tiny-llama")), out)
    assert spec.apply_chat_template == "tool_use"
    assert spec.system_instruction == "너는 도우미다."
    assert spec.fewshot_as_multiturn is None and multiturn(spec) is True  # lm-eval's default

    # a run evaluated without them (a manifest written before chat settings existed)
    old = rundir.Manifest(
        fusebench_version="0",
        git_commit=None,
        model=rundir.ModelInfo(name_or_path="m", local=True),
        backend=rundir.BackendInfo(name="hf", args={"dtype": "auto"}),
        requested_tasks=["kobest_boolq"],
        tasks=[],
        num_fewshot=[0, 5],
        seeds={"random": 1234, "numpy": 1234, "torch": 1234, "fewshot": 1234},
        limit=None,
        started_at="now",
    )
    out.mkdir(parents=True)
    rundir.write_manifest(out, old)
    assert changed_settings(out, spec) == [
        "apply_chat_template",
        "system_instruction",
        "fewshot_as_multiturn",
    ]
    plain = eval_spec(
        load_config(_config(fuse_config, tmp_path, comment_rows)),
        make_plan(config),
        Subject("base", str(zoo / "tiny-llama")),
        out,
    )
    assert plain.apply_chat_template is False and changed_settings(out, plain) == []


@pytest.mark.parametrize(
    ("evaluate", "message"),
    [
        ({"fewshot_as_multiturn": True}, "fewshot_as_multiturn needs apply_chat_template"),
        ({"system_instruction": " "}, "system_instruction must not be empty"),
        ({"apply_chat_template": ""}, "a template name must not be empty"),
    ],
)
def test_chat_mistakes_in_the_config_are_named_when_it_is_read(
    evaluate: dict, message: str, tmp_path: Path, fuse_config, comment_rows
) -> None:
    path = _config(fuse_config, tmp_path, comment_rows, **evaluate)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}: field evaluate" in str(caught.value) and message in str(caught.value)
    assert "\n" not in str(caught.value)
