"""The strength check (fusion/strength.py) on real zoo models and a fixed Korean corpus.

Its bits per byte is checked against a plain transformers forward pass that never touches the
stores: for a model whose tokenizer prepends BOS (tiny-llama, tiny-mistral) the definition of
lm-eval's rolling log-likelihood / ko_bpb (every text token after the BOS, UTF-8 bytes of the
text); for one that prepends nothing (tiny-gpt2, tiny-qwen2) the model's complete code length
of the text: the first token after the start token alone (the store's start sidecar, which
extraction writes without changing a byte of the shards), the rest conditioned on the text.
Without a usable sidecar the check must say "approximate" and report what it does measure
(the text after the first token, without a start token).
"""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from fusion import extract as extract_mod
from fusion import pipeline
from fusion.config import load_config
from fusion.corpus import NO_GROUP, CorpusError, prepare
from fusion.corpus import load as load_corpus
from fusion.extract import Rank, extract_model
from fusion.framing import START_FILE, write_start
from fusion.layout import WorkDir
from fusion.store import TopKStore
from fusion.strength import WARNING, compute, summary_lines

# Fixed Korean texts (Hangul, digits, Latin, Hanja, punctuation), in two groups and none.
ROWS = [
    {"text": "구한말, 통영 안뒤산 기슭 간창골에 김봉제 형제가 살았다.", "group": "소설"},
    {"text": "빵은 세르비아 요리의 가장 기본적인 구성을 이룬다!", "group": "요리 <b>&"},
    {"text": "이화여자대학교(梨花女子大學校)는 1886년에 세워진 사립 대학교이다.", "group": "소설"},
    {"text": "김치찌개는 묵은지와 돼지고기로 끓인다. 두부를 넣어도 좋다.", "group": "요리 <b>&"},
    {"text": "오늘 본 영화는 정말 재미있었다 ㅋㅋ 10점 만점에 9점"},
]
TOLERANCE = 1e-3  # float16 NLL in the store


def _config(tmp: Path, zoo: Path, target: str, sources: list[str], rows: list[dict]) -> Path:
    (tmp / "corpus.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    raw = {
        "work_dir": "work",
        "target": {"name": target, "path": str(zoo / target)},
        "sources": [{"name": s, "path": str(zoo / s)} for s in sources],
        "corpus": {"path": "corpus.jsonl", "max_chars": 200},
        "extract": {"k": 5, "max_length": 256, "batch_size": 3, "rows_per_shard": 2},
        "fuse": {"method": "min_ce_aligned"},
    }
    path = tmp / f"fuse-{target}.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def aligned(zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """One extraction and alignment (tiny-llama fused with tiny-gpt2 and tiny-mistral); the
    config and the strength check's status lines."""
    tmp = tmp_path_factory.mktemp("strength")
    config = _config(tmp, zoo, "tiny-llama", ["tiny-gpt2", "tiny-mistral"], ROWS)
    lines: list[str] = []
    report = pipeline.Reporter(status=lines.append)
    loaded = load_config(config)
    pipeline.extract(loaded, progress=False, report=report)
    pipeline.align(loaded, progress=False, report=report)
    return config, lines


@pytest.fixture(scope="module")
def no_bos(zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """tiny-qwen2 fused with tiny-gpt2 (neither tokenizer prepends a start token), extracted
    twice: as fusebench does (``with``) and with the start sidecar's writing switched off
    (``without``); the two configs."""
    configs = []
    for name in ("with", "without"):
        tmp = tmp_path_factory.mktemp(f"no-bos-{name}")
        configs.append(_config(tmp, zoo, "tiny-qwen2", ["tiny-gpt2"], ROWS))
        with pytest.MonkeyPatch.context() as patch:
            if name == "without":
                patch.setattr(extract_mod, "write_start_sidecar", lambda *a, **k: None)
            pipeline.extract(load_config(configs[-1]), progress=False)
    return configs[0], configs[1]


def _store(config: Path, model: str) -> Path:
    return WorkDir(load_config(config).work_dir).store(model)


def _strength(config: Path) -> dict[str, Any]:
    return json.loads(WorkDir(load_config(config).work_dir).align_strength.read_text("utf-8"))


def _forward_nll(path: Path, ids: list[int]) -> list[float]:
    """-log p(ids[t+1] | ids[:t+1]) for every t, in float64, straight from transformers."""
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1].double()
    logp = torch.log_softmax(logits, dim=-1)
    return (-logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]).tolist()


def _definition_bpb(path: Path, texts: list[str]) -> float:
    """ko_bpb's definition: the text's own tokens after BOS (EOS where there is none)."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    start = tokenizer.bos_token_id
    start = tokenizer.eos_token_id if start is None else start
    nats = sum(
        sum(_forward_nll(path, [start, *tokenizer(t, add_special_tokens=False)["input_ids"]]))
        for t in texts
    )
    return nats / (math.log(2) * sum(len(t.encode("utf-8")) for t in texts))


def _complete_bpb(path: Path, texts: list[str]) -> float:
    """The complete code length of each text for a model whose tokenizer prepends nothing:
    -[log p(t0 | start) + sum_i log p(t_i | t_0..t_{i-1})] over ln 2 * UTF-8 bytes."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    start = tokenizer.bos_token_id
    start = tokenizer.eos_token_id if start is None else start
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    with torch.no_grad():
        first = torch.log_softmax(model(torch.tensor([[start]])).logits[0, -1].double(), dim=-1)
    nats = 0.0
    for text in texts:
        ids = tokenizer(text)["input_ids"]  # what the store holds: nothing prepended
        assert ids == tokenizer(text, add_special_tokens=False)["input_ids"]
        nats += -float(first[ids[0]]) + sum(_forward_nll(path, ids))
    return nats / (math.log(2) * sum(len(t.encode("utf-8")) for t in texts))


def _after_first_token(path: Path, texts: list[str]) -> tuple[float, int]:
    """What a store without the sidecar measures: nats and bytes of the text after its first
    token, conditioned without a start token (byte-level tokens: one byte per character)."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    nats, size = 0.0, 0
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        nats += sum(_forward_nll(path, ids))
        size += len(text.encode("utf-8")) - len(tokenizer.convert_ids_to_tokens(ids[0]))
    return nats, size


def _group_texts(group: str) -> list[str]:
    return [r["text"] for r in ROWS if r.get("group", NO_GROUP) == group]


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-mistral"])
def test_bos_models_bits_per_byte_is_the_rolling_loglikelihood_definition(
    aligned: tuple[Path, list[str]], zoo: Path, model: str
) -> None:
    out = _strength(aligned[0])
    entry = out["models"][model]
    assert entry["exact"] is True and entry["note"] is None
    for group in ["소설", "요리 <b>&", NO_GROUP]:
        texts = _group_texts(group)
        cell = entry["groups"][group]
        assert cell["rows"] == len(texts)
        assert cell["bytes"] == sum(len(t.encode("utf-8")) for t in texts)
        assert cell["bpb"] == pytest.approx(_definition_bpb(zoo / model, texts), rel=TOLERANCE)
    everything = [r["text"] for r in ROWS]
    assert entry["total"]["bpb"] == pytest.approx(
        _definition_bpb(zoo / model, everything), rel=TOLERANCE
    )


NO_BOS = ["tiny-gpt2", "tiny-qwen2"]


@pytest.mark.parametrize("model", NO_BOS)
def test_a_model_without_bos_scores_its_first_token_after_the_start_token(
    no_bos: tuple[Path, Path], zoo: Path, model: str
) -> None:
    out = compute(load_config(no_bos[0]))
    entry = out["models"][model]
    assert (_store(no_bos[0], model) / START_FILE).is_file()
    assert entry["exact"] is True and entry["first_token"] == "start"
    assert entry["note"].startswith("complete code length, not token for token lm-eval's")
    tokenizer = AutoTokenizer.from_pretrained(zoo / model)
    for group in ["소설", "요리 <b>&", NO_GROUP]:
        texts = _group_texts(group)
        cell = entry["groups"][group]
        assert cell["bytes"] == sum(len(t.encode("utf-8")) for t in texts)  # whole texts
        assert cell["tokens"] == sum(len(tokenizer(t)["input_ids"]) for t in texts)
        assert cell["bpb"] == pytest.approx(_complete_bpb(zoo / model, texts), rel=TOLERANCE)
    everything = [r["text"] for r in ROWS]
    assert entry["total"]["bpb"] == pytest.approx(
        _complete_bpb(zoo / model, everything), rel=TOLERANCE
    )
    # Compared like an exact number: one of the two is best in each group, and the note is
    # shown without the approximate mark.
    assert all(out["best"][g] in NO_BOS for g in out["groups"]) and out["best_total"] in NO_BOS
    lines = summary_lines(out)
    assert f"  {model}: complete code length, not token for token lm-eval's" in "\n".join(lines)
    assert not any("~" in line for line in lines)


def test_the_sidecar_leaves_the_stores_byte_for_byte_as_they_were(
    no_bos: tuple[Path, Path], aligned: tuple[Path, list[str]]
) -> None:
    with_file, without = no_bos
    for model in ["tiny-qwen2", "tiny-gpt2"]:
        ours, plain = _store(with_file, model), _store(without, model)
        assert (ours / START_FILE).is_file() and not (plain / START_FILE).exists()
        names = sorted(p.name for p in plain.iterdir())
        assert sorted(p.name for p in ours.iterdir() if p.name != START_FILE) == names
        for name in names:  # shards, their sidecars and the manifest
            assert (ours / name).read_bytes() == (plain / name).read_bytes(), name
    # Stores of models that prepend their BOS get none, and their note stays empty.
    for model in ["tiny-llama", "tiny-mistral"]:
        assert not (_store(aligned[0], model) / START_FILE).exists()
        entry = _strength(aligned[0])["models"][model]
        assert entry["first_token"] == "bos" and entry["note"] is None
    # In the three-model fixture tiny-gpt2 is exact too.
    assert _strength(aligned[0])["models"]["tiny-gpt2"]["exact"] is True


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # in the tensor data: the header still parses
    path.write_bytes(bytes(data))


def _other_start(path: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        values, start = handle.get_tensor("logprobs"), int(handle.metadata()["start_id"])
    write_start(path.parent, TopKStore(path.parent).manifest, start + 1, values)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda p: p.unlink(), "no start.safetensors in the store"),
        (lambda p: p.write_bytes(b"not safetensors"), "start.safetensors unreadable"),
        (_corrupt, "sha256 does not match"),
        (_other_start, "start.safetensors was made for start_id"),
    ],
    ids=["missing", "garbage", "corrupt", "other-start"],
)
def test_a_missing_or_bad_sidecar_makes_the_number_approximate_and_extract_mends_it(
    no_bos: tuple[Path, Path], tmp_path: Path, zoo: Path, damage: Callable, reason: str
) -> None:
    shutil.copytree(no_bos[0].parent, tmp_path, dirs_exist_ok=True)
    config = tmp_path / no_bos[0].name
    store = _store(config, "tiny-gpt2")
    damage(store / START_FILE)
    out = compute(load_config(config))
    entry = out["models"]["tiny-gpt2"]
    assert entry["exact"] is False and entry["first_token"] == "unscored"
    assert entry["note"].startswith("approximate: the tokenizer prepends no start token and ")
    assert reason in entry["note"] and "first token" in entry["note"]
    texts = [r["text"] for r in ROWS]
    nats, size = _after_first_token(zoo / "tiny-gpt2", texts)
    assert entry["total"]["bytes"] == size
    assert entry["total"]["bpb"] == pytest.approx(nats / (math.log(2) * size), rel=TOLERANCE)
    # Not the definition nor the complete number: that is why it is flagged, not compared.
    for other in (_definition_bpb, _complete_bpb):
        value = other(zoo / "tiny-gpt2", texts)
        assert not math.isclose(entry["total"]["bpb"], value, rel_tol=TOLERANCE)
    assert all(out["best"][g] == "tiny-qwen2" for g in out["groups"])
    lines = summary_lines(out)
    assert any(line.startswith("  ~ tiny-gpt2: approximate") for line in lines)
    # Extraction again (every shard finished): only the sidecar is written; the shards are
    # not rewritten (the manifest is, as every extraction finalises it: the same bytes).
    before = {p.name: p.read_bytes() for p in store.iterdir() if p.name != START_FILE}
    times = {p.name: p.stat().st_mtime_ns for p in store.glob("shard-*")}
    said: list[str] = []
    pipeline.extract(load_config(config), progress=False, report=pipeline.Reporter(said.append))
    assert {p.name: p.read_bytes() for p in store.iterdir() if p.name != START_FILE} == before
    assert {p.name: p.stat().st_mtime_ns for p in store.glob("shard-*")} == times
    assert sum("first-token distribution" in line for line in said) == 1  # gpt2's only
    assert (store / START_FILE).read_bytes() == (
        _store(no_bos[0], "tiny-gpt2") / START_FILE
    ).read_bytes()
    assert compute(load_config(config))["models"]["tiny-gpt2"]["exact"] is True


def test_two_ranks_write_the_sidecar_once_on_rank_0(
    no_bos: tuple[Path, Path], tmp_path: Path, zoo: Path
) -> None:
    """Rank 1 writes its shards and no sidecar; rank 0 its shards and the sidecar; the store
    is the one-rank store, sidecar included."""
    config = load_config(_config(tmp_path, zoo, "tiny-qwen2", ["tiny-gpt2"], ROWS))
    prepare(config.corpus, config.work_dir, chat_model=config.target)
    corpus = load_corpus(config.work_dir)
    entry = config.sources[0]
    said: list[str] = []
    writer = extract_model(config, entry, corpus, Rank(1, 2), progress=False, say=said.append)
    assert not (writer.path / START_FILE).exists()
    assert sorted(p.name for p in writer.path.glob("shard-*.safetensors")) == [
        "shard-00001.safetensors"
    ]
    writer = extract_model(config, entry, corpus, Rank(0, 2), progress=False, say=said.append)
    writer.finalize()
    assert sum("first-token distribution" in line for line in said) == 1
    one_rank = _store(no_bos[0], "tiny-gpt2")
    for path in one_rank.iterdir():
        assert (writer.path / path.name).read_bytes() == path.read_bytes(), path.name


def test_rows_won_per_group_are_the_hand_count(aligned: tuple[Path, list[str]]) -> None:
    config, lines = aligned
    out = _strength(config)
    work = WorkDir(load_config(config).work_dir)
    names = ["tiny-llama", "tiny-gpt2", "tiny-mistral"]
    stores = {n: TopKStore(work.store(n)) for n in names}
    groups = [r.get("group", NO_GROUP) for r in ROWS]
    hand: dict[str, Counter] = {g: Counter() for g in set(groups)}
    for row, group in enumerate(groups):
        ces = []
        for n in names:
            seq = stores[n].sequence(int(list(stores[n].row_ids()).index(row)))
            ces.append(seq.mean_nll if len(seq) > 1 else math.inf)
        hand[group][names[ces.index(min(ces))]] += 1
    for group, counts in hand.items():
        assert out["wins"]["min_ce"][group] == {n: counts[n] for n in names}
    # Every criterion's split adds up to the align report's overall counts.
    report = json.loads(work.align_report.read_text("utf-8"))
    for criterion in ("min_ce", "min_ce_aligned"):
        for n in names:
            split = sum(out["wins"][criterion][g][n] for g in out["groups"])
            assert split == report["rows_won"][criterion][n]
    assert out["criterion"] == "min_ce_aligned"
    assert any(line.startswith("  rows won (min_ce_aligned) in 소설: ") for line in lines)


def _better_somewhere(out: dict[str, Any], source: str) -> bool:
    target = out["models"][out["target"]]["groups"]
    mine = out["models"][source]["groups"]
    return any(mine[g]["bpb"] < target[g]["bpb"] for g in out["groups"])


def _any_better(out: dict[str, Any]) -> bool:
    """Some exact source is better than the target on some group."""
    return any(
        _better_somewhere(out, name)
        for name, entry in out["models"].items()
        if entry["role"] == "source" and entry["exact"]
    )


def test_the_warning_comes_when_no_source_is_better_and_not_otherwise(
    aligned: tuple[Path, list[str]], zoo: Path
) -> None:
    config, lines = aligned
    tmp = config.parent
    # A twin of the target (the same weights under another name) is never better: a warning,
    # one line, naming the best margin (0: the same numbers).
    twin_config = _config(tmp, zoo, "tiny-llama", ["tiny-gpt2"], ROWS)
    raw = yaml.safe_load(twin_config.read_text("utf-8"))
    raw["sources"] = [{"name": "llama-twin", "path": str(zoo / "tiny-llama")}, raw["sources"][0]]
    twin_config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    twin = load_config(twin_config)
    pipeline.extract(twin, progress=False)
    # Without its sidecar tiny-gpt2 is approximate (the work_dir is the fixture's: put back).
    sidecar = WorkDir(twin.work_dir).store("tiny-gpt2") / START_FILE
    sidecar.rename(tmp / START_FILE)
    try:
        out = compute(twin)
    finally:
        (tmp / START_FILE).rename(sidecar)
    warnings = [line for line in summary_lines(out) if WARNING in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ")
    assert "best margin: llama-twin" in warnings[0] and "+0.0000" in warnings[0]
    assert "tiny-gpt2 approximate, not compared" in warnings[0]
    # tiny-llama and tiny-mistral with either as the target, tiny-gpt2 beside (all exact):
    # the warning comes exactly when no source is better on any group.
    swapped = compute(
        load_config(_config(tmp, zoo, "tiny-mistral", ["tiny-llama", "tiny-gpt2"], ROWS))
    )
    for result, shown in [(_strength(config), lines), (swapped, summary_lines(swapped))]:
        assert all(m["exact"] for m in result["models"].values())
        better = _any_better(result)
        assert (result["warning"] is None) is better
        assert sum(WARNING in line for line in shown) == (0 if better else 1)
    assert _better_somewhere(_strength(config), "tiny-mistral") or _better_somewhere(
        swapped, "tiny-llama"
    )  # so the no-warning side is exercised


def test_a_bad_group_is_one_line_naming_file_line_and_field(tmp_path: Path, zoo: Path) -> None:
    rows = [{"text": "첫 줄", "group": "a"}, {"text": "둘째 줄", "group": 3}]
    config = load_config(_config(tmp_path, zoo, "tiny-llama", ["tiny-mistral"], rows))
    with pytest.raises(CorpusError) as err:
        prepare(config.corpus, config.work_dir)
    message = str(err.value)
    assert "\n" not in message and "corpus.jsonl:2:" in message and "'group'" in message
    (tmp_path / "corpus.jsonl").write_text('{"text": "가", "group": ""}\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"corpus.jsonl:1: field 'group'"):
        prepare(config.corpus, config.work_dir)


def test_groups_survive_splitting_and_a_corpus_without_them_is_unchanged(
    tmp_path: Path, zoo: Path, nsmc_rows: Callable[[int], list[str]]
) -> None:
    long = " ".join(nsmc_rows(12))
    rows = [{"text": long, "group": "리뷰"}, {"text": "그룹 없는 줄"}]
    config = load_config(_config(tmp_path, zoo, "tiny-llama", ["tiny-mistral"], rows))
    corpus = prepare(config.corpus, config.work_dir)
    assert len(corpus) > 2
    assert [corpus.group(r) for r in range(len(corpus))] == ["리뷰"] * (len(corpus) - 1) + [
        NO_GROUP
    ]
    written = (corpus.directory / "rows.jsonl").read_text("utf-8").splitlines()
    assert "group" not in json.loads(written[-1])  # no key where there is no group
    plain = tmp_path / "plain"
    plain.mkdir()
    config = load_config(_config(plain, zoo, "tiny-llama", ["tiny-mistral"], [rows[1]]))
    assert prepare(config.corpus, config.work_dir).groups is None
