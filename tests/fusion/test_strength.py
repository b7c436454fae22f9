"""The strength check (fusion/strength.py) on real zoo models and a fixed Korean corpus.

Its bits per byte is checked against a plain transformers forward pass that never touches the
stores: for a model whose tokenizer prepends BOS (tiny-llama, tiny-mistral) the definition of
lm-eval's rolling log-likelihood / ko_bpb (every text token after the BOS, UTF-8 bytes of the
text); for one that prepends nothing (tiny-gpt2) the store cannot give that, so the check must
say "approximate" and report what it does measure (the text after the first token, without a
start token), and that number differs from the definition.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from fusion import pipeline
from fusion.config import load_config
from fusion.corpus import NO_GROUP, CorpusError, prepare
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


def test_a_model_without_bos_is_flagged_and_measures_the_text_after_its_first_token(
    aligned: tuple[Path, list[str]], zoo: Path
) -> None:
    config, lines = aligned
    entry = _strength(config)["models"]["tiny-gpt2"]
    assert entry["exact"] is False and "first token" in entry["note"]
    tokenizer = AutoTokenizer.from_pretrained(zoo / "tiny-gpt2")
    nats, size = 0.0, 0
    for text in [r["text"] for r in ROWS]:
        ids = tokenizer(text)["input_ids"]  # what the store holds: no BOS
        nats += sum(_forward_nll(zoo / "tiny-gpt2", ids))
        # A byte-level token spells one byte per character (it may end inside a syllable).
        size += len(text.encode("utf-8")) - len(tokenizer.convert_ids_to_tokens(ids[0]))
    assert entry["total"]["bytes"] == size
    assert entry["total"]["bpb"] == pytest.approx(nats / (math.log(2) * size), rel=TOLERANCE)
    # Not the definition: that is why it is flagged rather than compared.
    definition = _definition_bpb(zoo / "tiny-gpt2", [r["text"] for r in ROWS])
    assert not math.isclose(entry["total"]["bpb"], definition, rel_tol=TOLERANCE)
    assert any(line.startswith("  ~ tiny-gpt2: approximate") for line in lines)
    assert any("~" in line and line.lstrip().startswith("tiny-gpt2") for line in lines)


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
    out = compute(twin)
    warnings = [line for line in summary_lines(out) if WARNING in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ")
    assert "best margin: llama-twin" in warnings[0] and "+0.0000" in warnings[0]
    assert "tiny-gpt2 approximate, not compared" in warnings[0]
    # tiny-llama and tiny-mistral (both exact) with either as the target: the warning comes
    # exactly when the source is better on no group.
    swapped = compute(
        load_config(_config(tmp, zoo, "tiny-mistral", ["tiny-llama", "tiny-gpt2"], ROWS))
    )
    for result, shown, source in [
        (_strength(config), lines, "tiny-mistral"),
        (swapped, summary_lines(swapped), "tiny-llama"),
    ]:
        better = _better_somewhere(result, source)
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
