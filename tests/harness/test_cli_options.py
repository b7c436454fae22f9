"""Settings written once: the CLI's defaults are the specs', fixed choices are Enums, and
every long command takes --quiet (fuse's --no-progress and vocab expand's --model still work)."""

from __future__ import annotations

from enum import Enum

import pytest
import typer.main

from harness.cli import app, main
from harness.specs import EvalSpec, GenerateSpec, JudgeRequest


def _params(*path: str) -> dict:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return {param.name: param for param in command.params}


@pytest.mark.parametrize(
    ("command", "spec", "names"),
    [
        (
            "eval",
            EvalSpec,
            [
                "output",
                "limit",
                "seed",
                "overwrite",
                "cache_dir",
                "backend",
                "apply_chat_template",
                "system_instruction",
                "fewshot_as_multiturn",
            ],
        ),
        (
            "generate",
            GenerateSpec,
            [
                "output",
                "base_url",
                "serve",
                "api_key_env",
                "device",
                "trust_remote_code",
                "chat_template",
                "max_tokens",
                "concurrency",
                "timeout",
                "overwrite",
                "quiet",
            ],
        ),
        (
            "judge",
            JudgeRequest,
            [
                "judge_model",
                "base_url",
                "api_key_env",
                "template",
                "repeats",
                "temperature",
                "max_tokens",
                "output",
                "concurrency",
                "requests_per_minute",
                "timeout",
                "max_retries",
                "backoff",
                "max_asks",
                "cache",
                "price_in",
                "price_out",
                "quiet",
            ],
        ),
    ],
)
def test_option_defaults_and_help_are_the_specs(command: str, spec: type, names: list[str]) -> None:
    params = _params(command)
    for name in names:
        field = spec.model_fields[name]
        default = params[name].default
        expected = field.get_default(call_default_factory=True)
        value = default.value if isinstance(default, Enum) else default
        assert value == (expected.value if isinstance(expected, Enum) else expected), name
        if name != "quiet":
            assert params[name].help == field.description, name


def test_the_seed_and_batch_size_defaults_live_in_the_specs() -> None:
    params = _params("eval")
    assert params["seed"].default == EvalSpec.model_fields["seed"].default == 1234
    assert params["batch_size"].default == 8
    assert params["tasks"].default == "ko_fusellm" and params["num_fewshot"].default == "0"
    judge = _params("judge")
    assert judge["concurrency"].default == 8 and judge["timeout"].default == 120.0


@pytest.mark.parametrize(
    ("args", "choices"),
    [
        (["eval", "m", "--backend"], ["hf", "hf-lm-eval", "vllm"]),
        (["generate", "m", "--serve"], ["transformers", "vllm"]),
        (["judge", "t", "--template"], ["logickor", "fusebench"]),
    ],
)
def test_fixed_choices_are_enums(
    args: list[str], choices: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    option = args[-1].removeprefix("--")
    param = _params(args[0])[option]
    assert [choice.value for choice in param.type_descriptor.annotation] == choices
    assert main([*args, "nope"]) == 2  # refused by the parser, before any work
    err = capsys.readouterr().err
    assert "nope" in err and all(choice in err for choice in choices)


@pytest.mark.parametrize(
    "path",
    [
        ("eval",),
        ("generate",),
        ("judge",),
        ("merge",),
        ("zoo", "build"),
        ("fuse", "extract"),
        ("fuse", "align"),
        ("fuse", "train"),
        ("fuse", "run"),
        ("fuse", "chat"),
        ("vocab", "expand"),
        ("vocab", "train"),
    ],
)
def test_every_long_command_takes_quiet(path: tuple[str, ...]) -> None:
    params = _params(*path)
    assert "--quiet" in params["quiet"].opts
    if path[0] == "fuse" and path[1] != "train":
        legacy = params["progress"]
        assert legacy.hidden and "--no-progress" in legacy.secondary_opts


def test_vocab_expand_model_is_an_argument(capsys: pytest.CaptureFixture[str]) -> None:
    params = _params("vocab", "expand")
    assert params["model"].param_type_name == "argument"
    assert params["model_option"].hidden and params["model_option"].opts == ["--model"]
    base = ["vocab", "expand", "--corpus", "c.tsv", "--output", "out"]
    assert main(base) == 2
    assert "MODEL" in capsys.readouterr().err
    assert main([*base, "a", "--model", "b"]) == 2
    assert "give one" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--limit", "nan", "--limit nan: expected a number > 0"),
        ("--limit", "inf", "--limit inf: expected a number > 0"),
        ("--limit", "-inf", "--limit -inf: expected a number > 0"),
        ("--limit", "0", "--limit 0.0: expected a number > 0"),
        ("--num-fewshot", "0,,5", "--num-fewshot '0,,5': empty item"),
        ("--num-fewshot", "0,", "--num-fewshot '0,': empty item"),
        ("--num-fewshot", ",", "--num-fewshot: give at least one shot count"),
        ("--num-fewshot", "0,-5", "--num-fewshot '0,-5': shot counts must be >= 0"),
        ("--num-fewshot", "0,five", "--num-fewshot '0,five': expected integers"),
    ],
)
def test_bad_limit_or_shots_is_one_line_and_nothing_written(
    option: str, value: str, message: str, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["eval", str(tmp_path / "model"), "--output", str(out), option, value]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
