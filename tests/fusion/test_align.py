"""Alignment: token texts, DTW (exact pairs, and equal to a plain Python DTW), vocabulary maps,
projection; on hand-built Korean tokens of `Ġ` and `▁` tokenizers and on the zoo's tokenizers."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from fusion.align.dtw import align, matches_per_target
from fusion.align.project import (
    EMPTY,
    FROM_SOURCE,
    OFFSET_MISMATCH,
    ONE_HOT,
    ONE_TO_MANY,
    map_topk,
    project_row,
)
from fusion.align.tokens import Vocabulary, _byte_decoder
from fusion.align.vocab import PairCounts, build_map, exact_map, mined_map, statistics_map
from fusion.store import PAD_ID


def bl(text: str) -> str:
    """A GPT-2 byte-level token spelling of ``text`` (spaces as Ġ, Korean as mojibake)."""
    encoder = {byte: char for char, byte in _byte_decoder().items()}
    return "".join(encoder[b] for b in text.encode("utf-8"))


# ---------------------------------------------------------------- a plain Python reference


def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def reference_dtw(a: list[str], b: list[str]) -> list[tuple[int, int]]:
    """FuseLLM's ``dtw`` (utils/others.py) transcribed: it is called with the *source* as
    series 1 and the target as series 2, traces back with ``argmin([diag, up, left])`` (first
    minimum wins), "up" stepping back in the source. Returned as (target, source) pairs."""
    series_1, series_2 = b, a  # source, target
    inf = float("inf")
    d = [[inf] * (len(series_2) + 1) for _ in range(len(series_1) + 1)]
    d[0][0] = 0
    for i in range(len(series_1)):
        for j in range(len(series_2)):
            d[i + 1][j + 1] = levenshtein(series_1[i], series_2[j]) + min(
                d[i][j + 1], d[i + 1][j], d[i][j]
            )
    m = [row[1:] for row in d[1:]]
    i, j = len(series_1) - 1, len(series_2) - 1
    matches = []
    while i > 0 or j > 0:
        matches.append((i, j))
        options = [
            m[i - 1][j - 1] if i > 0 and j > 0 else inf,
            m[i - 1][j] if i > 0 else inf,
            m[i][j - 1] if j > 0 else inf,
        ]
        move = options.index(min(options))
        i, j = (i - 1, j - 1) if move == 0 else (i - 1, j) if move == 1 else (i, j - 1)
    matches.append((0, 0))
    return [(t, s) for s, t in reversed(matches)]


def pairs(path: np.ndarray) -> list[tuple[int, int]]:
    return [tuple(p) for p in path.tolist()]


# ---------------------------------------------------------------- token texts


def test_markers_and_bytes_normalise_to_the_same_text() -> None:
    target = Vocabulary.from_tokens([bl("영화"), bl(" 영화"), bl("는")[:1]], "byte-level")
    source = Vocabulary.from_tokens(["영화", "▁영화", "<0xEB>"], "metaspace")
    assert target.text == source.text == ["영화", " 영화", "\udceb"]
    assert target.key == source.key == ["영화", "영화", "\udceb"]


# ---------------------------------------------------------------- DTW


def test_korean_alignment_across_g_and_metaspace_exact_pairs() -> None:
    # "이 영화는 정말": target byte-level (Ġ), source metaspace (▁). Costs (markers stripped):
    # 영화는/영화 1, 영화는/는 2, 정말/는 2: the paths through (1, 2) and through (2, 2) both
    # cost 3; tracing back from (2, 3) the diagonal wins the tie, so 는 joins 영화는.
    target = Vocabulary.from_tokens([bl("이"), bl(" 영화는"), bl(" 정말")], "byte-level")
    source = Vocabulary.from_tokens(["▁이", "▁영화", "는", "▁정말"], "metaspace")
    a, b = target.keys(np.arange(3)), source.keys(np.arange(4))
    path = align(a, b)
    assert pairs(path) == [(0, 0), (1, 1), (1, 2), (2, 3)] == reference_dtw(a, b)
    assert matches_per_target(path, 3) == [[0], [1, 2], [3]]


def test_byte_fallback_pieces_align_as_text_pieces() -> None:
    # "이똠" with 똠 spelled as three byte-fallback tokens <0xEB><0x98><0xA0> on the source side:
    # each lone byte is one edit from any syllable, so every 4-cell path costs 3 and the tie
    # rule (diagonal first while tracing back) gives the first two bytes to 이:
    # D = [[0, 1, 2, 3], [1, 1, 2, 3]] -> from (1, 3): diag D[0][2] = 2 = left D[1][2].
    target = Vocabulary.from_tokens([bl("이"), bl("똠")], "byte-level")
    source = Vocabulary.from_tokens(["▁이", "<0xEB>", "<0x98>", "<0xA0>"], "metaspace")
    a, b = target.keys(np.arange(2)), source.keys(np.arange(4))
    assert b[1:] == ["\udceb", "\udc98", "\udca0"]
    assert pairs(align(a, b)) == [(0, 0), (0, 1), (0, 2), (1, 3)] == reference_dtw(a, b)
    # The bytes still concatenate to the syllable (the one-to-many rule compares bytes).
    assert b"".join(source.data[1:]) == target.data[1]


def test_zoo_tokenizers_align_with_the_expected_pairs(zoo: Path) -> None:
    from transformers import AutoTokenizer

    text = "이 영화 정말 재미있어요! 최고예요"
    toks = {
        n: AutoTokenizer.from_pretrained(zoo / n)
        for n in ("tiny-llama", "tiny-gpt2", "tiny-mistral")
    }
    vocabs = {n: Vocabulary.from_tokenizer(t) for n, t in toks.items()}
    ids = {n: np.asarray(t(text)["input_ids"]) for n, t in toks.items()}
    llama, gpt2, mistral = (
        vocabs[n].keys(ids[n]) for n in ("tiny-llama", "tiny-gpt2", "tiny-mistral")
    )
    assert llama[1:] == gpt2 == mistral[1:]  # same text once markers and bytes are undone
    # Both with BOS: the diagonal. llama (<s>) against gpt2 (no BOS): <s> and 이 share gpt2's 이.
    assert pairs(align(llama, mistral)) == [(i, i) for i in range(len(llama))]
    assert pairs(align(llama, gpt2)) == [(0, 0)] + [(i, i - 1) for i in range(1, len(llama))]


def test_dtw_tie_between_single_steps_goes_to_the_source_step() -> None:
    """The issue's counterexample: FuseLLM steps back in the source on such a tie."""
    target, source = ["bb", "ba", "bb"], ["ba", "ab", "ba"]
    assert matches_per_target(align(target, source), 3) == [[0], [0], [1, 2]]


@pytest.mark.parametrize("seed", range(4))
def test_fast_dtw_equals_the_plain_python_dtw_on_random_cases(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = "ab가나다 "
    for _ in range(100):
        a = [
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4)))
            for _ in range(rng.randint(1, 15))
        ]
        b = [
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 4)))
            for _ in range(rng.randint(1, 15))
        ]
        assert pairs(align(a, b)) == reference_dtw(a, b)


def test_fast_dtw_equals_the_plain_python_dtw_on_real_rows(zoo: Path, data_root: Path) -> None:
    from transformers import AutoTokenizer

    lines = (data_root / "nsmc" / "ratings_test.txt").read_text(encoding="utf-8").splitlines()
    texts = [line.split("\t")[1] for line in lines[1:41]]
    pairs_of = [
        ("tiny-llama", "tiny-mistral"),
        ("tiny-qwen2", "tiny-mistral"),
        ("tiny-gpt2", "tiny-llama"),
    ]
    for a_name, b_name in pairs_of:
        ta, tb = (AutoTokenizer.from_pretrained(zoo / n) for n in (a_name, b_name))
        va, vb = Vocabulary.from_tokenizer(ta), Vocabulary.from_tokenizer(tb)
        for text in texts:
            a = va.keys(np.asarray(ta(text)["input_ids"]))
            b = vb.keys(np.asarray(tb(text)["input_ids"]))
            assert pairs(align(a, b)) == reference_dtw(a, b)


# ---------------------------------------------------------------- vocabulary mapping


def _vocabs() -> tuple[Vocabulary, Vocabulary]:
    target = Vocabulary.from_tokens(
        [
            "<s>",
            "</s>",
            "<unk>",
            bl(" 영화"),
            bl("영화"),
            bl(" 재미"),
            bl("있"),
            bl("어요"),
            bl("있어"),
        ],
        "byte-level",
        {"bos": 0, "eos": 1, "unk": 2},
    )
    source = Vocabulary.from_tokens(
        ["<|endoftext|>", "▁영화", "영화", "▁재미있", "있어요", "<0xEB>", "어요"],
        "metaspace",
        {"bos": 0, "eos": 0, "unk": 0},
    )
    return target, source


def test_exact_map_swaps_markers_and_maps_specials_by_role() -> None:
    target, source = _vocabs()
    # <|endoftext|> is bos and eos: eos wins. ▁영화 -> Ġ영화, 영화 -> 영화, 어요 -> 어요.
    result = exact_map(source, target)
    assert result.ids.tolist() == [1, 3, 4, -1, -1, -1, 7]
    assert result.rule_counts() == {
        "unmapped": 3,
        "special": 1,
        "exact": 3,
        "statistics": 0,
        "mined": 0,
    }


def test_mined_map_takes_the_nearest_text() -> None:
    target, source = _vocabs()
    # ▁재미있 (" 재미있") is one edit from " 재미" (5); 있어요 is one edit from both 어요 (7) and
    # 있어 (8): ties go to the lowest id; a lone byte <0xEB> is one edit from 있 (6).
    assert mined_map(source, target).ids.tolist() == [1, 3, 4, 5, 7, 6, 7]


def test_statistics_map_prefers_aligned_candidates_by_distance_then_count() -> None:
    target, source = _vocabs()
    counts = PairCounts()
    # 있어요 (4) was aligned to 있어 (8) five times and to 어요 (7) twice: equal distance, the
    # count decides -> 8 (mined said 7). ▁재미있 (3) was aligned only to 영화 (4): the one
    # candidate wins though " 재미" is nearer. The rest were never aligned: mined.
    counts.add(
        np.array([8] * 5 + [7] * 2 + [4]),
        np.array([4] * 7 + [3]),
        np.array([[i, i] for i in range(8)]),
    )
    vmap = statistics_map(source, target, counts)
    assert vmap.ids.tolist() == [1, 3, 4, 4, 8, 6, 7]
    assert vmap.rule_counts() == {
        "unmapped": 0,
        "special": 1,
        "exact": 3,
        "statistics": 2,
        "mined": 1,
    }
    assert build_map("statistics", source, target, counts).ids.tolist() == vmap.ids.tolist()
    again = PairCounts.from_arrays(counts.to_arrays())
    assert statistics_map(source, target, again).ids.tolist() == vmap.ids.tolist()


def test_statistics_map_keeps_exact_matches_whatever_dtw_aligned() -> None:
    """FuseChat maps a token to its identical target token first; the statistics only decide
    tokens with no identical target token (today's defect: `$` -> `수`, `"` -> `Ġ`)."""
    target, source = _vocabs()
    counts = PairCounts()
    # ▁영화 (1) and 어요 (6) have exact targets (3 and 7) but were aligned to 있 (6) and 재미
    # (5) more often; 있어요 (4) has no exact target and was aligned to 있어 (8).
    counts.add(
        np.array([6] * 3 + [5] * 3 + [8]),
        np.array([1] * 3 + [6] * 3 + [4]),
        np.array([[i, i] for i in range(7)]),
    )
    vmap = statistics_map(source, target, counts)
    assert vmap.ids[1] == 3 and vmap.ids[6] == 7
    assert vmap.ids[4] == 8


def test_statistics_map_is_exact_first_on_the_zoo_tokenizers(zoo: Path, data_root: Path) -> None:
    """On real Korean rows and the zoo's tokenizers, every source token whose text is in the
    target vocabulary maps to that token under ``statistics`` (it did not, for 51 tiny-gpt2
    and 48 tiny-mistral tokens, before the fix)."""
    from transformers import AutoTokenizer

    lines = (data_root / "nsmc" / "ratings_test.txt").read_text(encoding="utf-8").splitlines()
    texts = [line.split("\t")[1] for line in lines[1:201]]
    tt = AutoTokenizer.from_pretrained(zoo / "tiny-llama")
    tv = Vocabulary.from_tokenizer(tt)
    decided_by_statistics = 0
    for name in ("tiny-gpt2", "tiny-mistral", "tiny-qwen2"):
        st = AutoTokenizer.from_pretrained(zoo / name)
        sv = Vocabulary.from_tokenizer(st)
        counts = PairCounts()
        for text in texts:
            a = np.asarray(tt(text)["input_ids"])
            b = np.asarray(st(text)["input_ids"])
            counts.add(a, b, align(tv.keys(a), sv.keys(b)))
        exact = exact_map(sv, tv)
        stats = statistics_map(sv, tv, counts)
        has_exact = exact.rule == 2
        assert has_exact.sum() > 100
        assert (stats.ids[has_exact] == exact.ids[has_exact]).all(), name
        assert (stats.rule[has_exact] == 2).all()
        decided_by_statistics += stats.rule_counts()["statistics"]
    assert decided_by_statistics > 0  # the statistics rule still decides the other tokens


# ---------------------------------------------------------------- projection


def test_map_topk_drops_unmapped_and_repeated_ids_and_renormalises() -> None:
    vmap = np.array([5, 5, -1, 7], dtype=np.int32)
    ids = np.array([[0, 1, 2, 3], [3, PAD_ID, PAD_ID, PAD_ID]], dtype=np.int32)
    logp = np.log(np.array([[0.4, 0.3, 0.2, 0.1], [0.5, 1, 1, 1]], dtype=np.float32))
    logp[1, 1:] = -np.inf
    mapped, scores, mass = map_topk(ids, logp, vmap)
    assert mapped.tolist() == [[5, 7, -1, -1], [7, -1, -1, -1]]
    np.testing.assert_allclose(mass, [0.5, 0.5], rtol=1e-6)  # 0.4 + 0.1 kept; 0.5
    np.testing.assert_allclose(np.exp(scores[0, :2]), [0.8, 0.2], rtol=1e-6)
    assert scores[1, 0] == pytest.approx(0.0)


def test_projection_rules_hand_computed() -> None:
    # Target (Ġ): 이 | 영화는 | 재미 | 있어 | 요      Source (▁): 이 | 영화 | 는 | 재미있 | 어 | 요
    t_tokens = [bl("이"), bl(" 영화는"), bl(" 재미"), bl("있어"), bl("요")]
    s_tokens = ["▁이", "▁영화", "는", "▁재미있", "어", "요"]
    target = Vocabulary.from_tokens(t_tokens, "byte-level")
    source = Vocabulary.from_tokens(s_tokens, "metaspace")
    t_ids, s_ids = np.arange(5), np.arange(6)
    path = align(target.keys(t_ids), source.keys(s_ids))
    assert pairs(path) == [(0, 0), (1, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    # A hand-made map: 는 unmapped, ▁재미있 -> 재미 (so position 2 matches through the map),
    # 어 -> 재미 (so position 3, 있어 against 어, does not match).
    vmap = np.array([0, 1, -1, 2, 2, 4], dtype=np.int32)
    p = [0.5, 0.3, 0.2]
    topk = np.array([[1, 2, 5], [0, 1, 2], [3, 4, 0], [4, 5, 2], [0, 1, 2], [0, 1, 2]], np.int32)
    out = project_row(
        target,
        source,
        vmap,
        t_ids,
        s_ids,
        topk,
        np.log(np.tile(p, (6, 1))).astype(np.float32),
        path,
    )
    assert out.outcome.tolist() == [FROM_SOURCE, ONE_TO_MANY, FROM_SOURCE, ONE_HOT, FROM_SOURCE]
    # 0: source 0's [1, 2 (unmapped), 5 -> 4]  -> [1, 4], renormalised 0.5/0.7, 0.2/0.7.
    # 1: 영화 + 는 == 영화는: the LAST piece (source 2): [3 -> 2, 4 -> 2 (repeat), 0] -> [2, 0].
    # 2: source 3: [4 -> 2, 5 -> 4, 2 (unmapped)] -> [2, 4], 0.5/0.8, 0.3/0.8.
    # 3: no match: one-hot on the NEXT target token (id 4), not the current one (3).
    # 4: last position, matched: source 5's [0, 1, 2 (unmapped)] -> [0, 1].
    assert out.ids.tolist() == [[1, 4, -1], [2, 0, -1], [2, 4, -1], [4, -1, -1], [0, 1, -1]]
    want = [[5 / 7, 2 / 7], [5 / 7, 2 / 7], [5 / 8, 3 / 8], [1.0, 0.0], [5 / 8, 3 / 8]]
    np.testing.assert_allclose(np.exp(out.logprobs[:, :2]), want, rtol=1e-6)
    assert np.isneginf(out.logprobs[:, 2]).all()


def test_projection_of_an_unmatched_last_position_is_empty() -> None:
    target = Vocabulary.from_tokens([bl("이"), bl("가")], "byte-level")
    source = Vocabulary.from_tokens(["▁이", "나"], "metaspace")
    vmap = np.array([0, -1], dtype=np.int32)
    topk = np.array([[0], [0]], dtype=np.int32)
    out = project_row(
        target,
        source,
        vmap,
        np.arange(2),
        np.arange(2),
        topk,
        np.zeros((2, 1), np.float32),
        align(["이", "가"], ["이", "나"]),
    )
    assert out.outcome.tolist() == [FROM_SOURCE, EMPTY]
    assert out.ids.tolist() == [[0], [PAD_ID]]


def test_one_to_one_pairs_must_end_at_the_same_offset() -> None:
    """Target 는다 | . against source 는다. | (something): DTW pairs 는다 with 는다., and the
    vocabulary map sends 는다. to 는다, but the source's distribution there predicts what
    follows the full stop: the position falls back to the one-hot on the next target token."""
    text = "는다. 그"
    t_tokens = [bl("는다"), bl("."), bl(" 그")]
    s_tokens = ["▁는다.", "▁그"]
    target = Vocabulary.from_tokens(t_tokens, "byte-level")
    source = Vocabulary.from_tokens(s_tokens, "metaspace")
    t_ids, s_ids = np.arange(3), np.arange(2)
    path = np.array([[0, 0], [1, 0], [2, 1]], dtype=np.int32)
    vmap = np.array([0, 2], dtype=np.int32)  # 는다. -> 는다 (as a mined map would)
    topk = np.array([[1, 0], [1, 0]], dtype=np.int32)
    logp = np.log(np.array([[0.6, 0.4], [0.6, 0.4]])).astype(np.float32)
    t_ends, s_ends = target.end_offsets(t_ids, text), source.end_offsets(s_ids, text)
    assert t_ends.tolist() == [6, 7, 10] and s_ends.tolist() == [7, 10]
    without = project_row(target, source, vmap, t_ids, s_ids, topk, logp, path)
    assert without.outcome[0] == FROM_SOURCE  # the defect: it took the source's distribution
    out = project_row(target, source, vmap, t_ids, s_ids, topk, logp, path, t_ends, s_ends)
    assert out.outcome.tolist()[:2] == [OFFSET_MISMATCH, ONE_HOT]
    assert out.ids[0].tolist() == [1, PAD_ID] and out.logprobs[0, 0] == 0  # next token: "."


def test_end_offsets_agree_across_zoo_tokenizers_on_korean_rows(zoo: Path, data_root: Path) -> None:
    """Every tokenizer ends its last token at the end of the (space-free) text, and a BOS the
    tokenizer inserted takes no room: offsets are comparable across tokenizers."""
    from transformers import AutoTokenizer

    lines = (data_root / "nsmc" / "ratings_test.txt").read_text(encoding="utf-8").splitlines()
    texts = [line.split("\t")[1] for line in lines[1:61]]
    for name in ("tiny-llama", "tiny-gpt2", "tiny-qwen2", "tiny-mistral"):
        tok = AutoTokenizer.from_pretrained(zoo / name)
        vocab = Vocabulary.from_tokenizer(tok)
        for text in texts:
            ids = np.asarray(tok(text)["input_ids"])
            ends = vocab.end_offsets(ids, text)
            assert ends[-1] == len(text.encode("utf-8").replace(b" ", b"")), (name, text)
            assert (np.diff(ends) >= 0).all()


def test_pair_counts_survive_a_safetensors_round_trip(tmp_path: Path) -> None:
    """to_arrays' columns are saved as they are (a strided view was written as contiguous,
    corrupting every saved count: found by an independent check)."""
    from safetensors.numpy import load_file, save_file

    counts = PairCounts()
    counts.add(np.array([5, 6, 7, 5]), np.array([1, 2, 3, 1]), np.array([[i, i] for i in range(4)]))
    save_file(counts.to_arrays(), str(tmp_path / "c.safetensors"))
    again = PairCounts.from_arrays(load_file(str(tmp_path / "c.safetensors")))
    assert {s: dict(t) for s, t in again.counts.items()} == {1: {5: 2}, 2: {6: 1}, 3: {7: 1}}


def test_gold_prefix_mass_moves_onto_the_gold_token() -> None:
    """Target writes (긍정) as ( | 긍정 | ); the source predicts 긍 after ( (its 긍 | 정 pieces).
    With gold_prefix the 0.6 on 긍 (a target token too, exact map) joins the gold 긍정's 0.1;
    부정 keeps its 0.3; without it the target would learn 긍, a token its own tokenizer never
    emits before 정 here."""
    t_tokens = [bl("("), bl("긍정"), bl(")"), bl("긍"), bl("부정")]
    s_tokens = ["(", "긍", "정", ")", "부정", "긍정"]
    target = Vocabulary.from_tokens(t_tokens, "byte-level")
    source = Vocabulary.from_tokens(s_tokens, "metaspace")
    t_ids, s_ids = np.array([0, 1, 2]), np.array([0, 1, 2, 3])
    path = np.array([[0, 0], [1, 1], [1, 2], [2, 3]], dtype=np.int32)  # 긍정 = 긍 + 정
    vmap = np.array([0, 3, -1, 2, 4, 1], dtype=np.int32)  # 긍 -> 긍 (exact), 긍정 -> 긍정
    topk = np.array([[1, 4, 5], [2, 1, 4], [3, 1, 4], [0, 1, 4]], np.int32)
    logp = np.log(np.tile([0.6, 0.3, 0.1], (4, 1))).astype(np.float32)
    args = (target, source, vmap, t_ids, s_ids, topk, logp, path)
    before = project_row(*args)
    assert before.outcome[0] == FROM_SOURCE and before.ids[0].tolist() == [3, 4, 1]
    out = project_row(*args, gold_prefix=True)
    assert out.ids[0].tolist() == [1, 4, PAD_ID]  # gold 긍정 first: 0.6 + 0.1
    np.testing.assert_allclose(np.exp(out.logprobs[0, :2]), [0.7, 0.3], rtol=1e-6)
    assert out.completed.tolist() == [True, False, False]
    assert out.mass[0] == pytest.approx(before.mass[0])  # the model's kept mass is unchanged


def test_gold_prefix_leaves_no_prefix_on_korean_rows(zoo: Path, data_root: Path, nsmc_rows) -> None:
    """On real rows and every zoo source against tiny-llama: after the rule, no projected
    position keeps an entry that is a proper prefix of its gold token; each position's
    probability is conserved; positions without a prefix are untouched; the rule fires."""
    from transformers import AutoTokenizer

    target_tok = AutoTokenizer.from_pretrained(zoo / "tiny-llama")
    tv = Vocabulary.from_tokenizer(target_tok)
    texts = list(nsmc_rows(40))
    fired = 0
    for name in ("tiny-gpt2", "tiny-mistral", "tiny-qwen2"):
        stok = AutoTokenizer.from_pretrained(zoo / name)
        sv = Vocabulary.from_tokenizer(stok)
        vmap = build_map("mined", sv, tv).ids
        rng = np.random.default_rng(0)
        for text in texts:
            t_ids = np.array(target_tok(text, add_special_tokens=False)["input_ids"])
            s_ids = np.array(stok(text, add_special_tokens=False)["input_ids"])
            path = align(tv.keys(t_ids), sv.keys(s_ids))
            topk = rng.integers(0, len(sv), size=(len(s_ids), 8)).astype(np.int32)
            topk[:, 0] = np.roll(s_ids, -1)  # the true next source token first, as models do
            logp = np.log(rng.dirichlet(np.ones(8), size=len(s_ids))).astype(np.float32)
            logp.sort(axis=1)
            logp = logp[:, ::-1].copy()
            ends = (tv.end_offsets(t_ids, text), sv.end_offsets(s_ids, text))
            plain = project_row(tv, sv, vmap, t_ids, s_ids, topk, logp, path, *ends)
            out = project_row(tv, sv, vmap, t_ids, s_ids, topk, logp, path, *ends, True)
            for i in range(len(t_ids) - 1):
                gold = tv.data[t_ids[i + 1]]
                kept = [t for t in out.ids[i].tolist() if t != PAD_ID]
                assert not any(
                    tv.data[t] != gold
                    and 0 < len(tv.data[t]) < len(gold)
                    and gold.startswith(tv.data[t])
                    and t not in tv.special_ids
                    for t in kept
                )
                np.testing.assert_allclose(
                    np.exp(out.logprobs[i]).sum(), np.exp(plain.logprobs[i]).sum(), rtol=1e-5
                )
                if not out.completed[i]:
                    assert out.ids[i].tolist() == plain.ids[i].tolist()
            fired += int(out.completed.sum())
    assert fired > 0
