"""Shared-context planning on hand-made token lists: no model, no torch.

The end-to-end check scores continuations through a plan with a made-up "model" (a
log-probability for every (tokens seen, next token)) and compares each sum with the one
computed token by token, as lm-eval would; the packed and KV-cache layouts are both read
back through ``picks``.
"""

from __future__ import annotations

import math

import pytest

from harness.backends import mc_plan
from harness.backends.mc_plan import Context, Plan


def test_window_cuts_from_the_left_as_lm_eval_does() -> None:
    # lm-eval keeps the last max_length + 1 tokens of context + continuation, drops the last.
    assert mc_plan.window([1, 2, 3], [4, 5], 10) == [1, 2, 3]
    assert mc_plan.window([1, 2, 3, 4, 5], [6, 7], 5) == [2, 3, 4, 5]
    # The cut depends on the continuation's length.
    assert mc_plan.window([1, 2, 3, 4, 5], [6], 5) == [1, 2, 3, 4, 5]
    assert mc_plan.window([1, 2], [3, 4, 5, 6], 4) == [2]
    assert mc_plan.window([1], [2, 3, 4, 5, 6], 4) == []  # nothing left to condition on
    assert not mc_plan.is_truncated([1, 2, 3, 4, 5], [6], 5)
    assert mc_plan.is_truncated([1, 2, 3, 4, 5], [6, 7], 5)


def test_group_by_the_context_the_model_sees() -> None:
    pairs = [
        ([1, 2, 3], [4]),
        ([1, 2, 3], [5, 6]),
        ([1, 2, 3], [4]),  # repeated: scored once, answered twice
        ([9, 1, 2, 3], [7, 8]),  # cut from the left to the same context
        ([8], [4]),
    ]
    grouping = mc_plan.group(pairs, max_length=4)
    # [9, 1, 2, 3] + [7, 8]: keep the last 5, drop the last: [1, 2, 3, 7]; window [1, 2, 3].
    assert list(grouping.contexts) == [(1, 2, 3), (8,)]
    assert grouping.contexts[(1, 2, 3)].continuations == {(4,): [4], (5, 6): [5, 6], (7, 8): [7, 8]}
    assert grouping.slots == [
        ((1, 2, 3), (4,)),
        ((1, 2, 3), (5, 6)),
        ((1, 2, 3), (4,)),
        ((1, 2, 3), (7, 8)),
        ((8,), (4,)),
    ]
    assert grouping.truncated == 1
    scores = {slot: (float(i), i % 2 == 0) for i, slot in enumerate(dict.fromkeys(grouping.slots))}
    assert grouping.answers(scores) == [
        (0.0, True),
        (1.0, False),
        (0.0, True),
        (2.0, True),
        (3.0, False),
    ]


def test_plan_leads_with_the_longest_continuation() -> None:
    # boolq-like: two answers sharing their first token; hellaswag-like: long endings.
    entry = Context([1, 2], {(5,): [5], (5, 6, 7): [5, 6, 7], (5, 8): [5, 8], (9, 9): [9, 9]})
    plan = Plan.of(entry)
    assert plan.prefix == [1, 2, 5, 6]  # context + everything the lead feeds
    assert plan.first_scored == 1 and plan.scored == 3
    # Tokens fed while agreeing with the lead; tails go on from there.
    assert plan.depth == {(5,): 0, (5, 6, 7): 2, (5, 8): 1, (9, 9): 0}
    assert plan.tails == [([9, 9], 0)]  # [5, 8] is complete once 5 is fed: 8 is read at depth 1
    assert plan.packed_length == 4 + 1
    assert mc_plan.fed(plan, [9, 9], 0) == ([9], 2)
    assert plan.key == (1, 2)


def test_batches_run_longest_first() -> None:
    contexts = [
        Context([1], {(2,): [2]}),
        Context([3, 4, 5], {(6,): [6]}),
        Context([7, 8], {(9,): [9]}),
    ]
    batches = mc_plan.batches(contexts, 2)
    assert [[plan.key for plan in batch] for batch in batches] == [[(3, 4, 5), (7, 8)], [(1,)]]


def test_tails_split_only_where_padding_dominates() -> None:
    assert mc_plan.chunks([2, 2, 1, 1]) == [slice(0, 4)]  # a pass costs more than the padding
    assert mc_plan.chunks([40] * 4 + [3] * 28) == [slice(0, 4), slice(4, 32)]
    assert mc_plan.chunks([5]) == [slice(0, 1)]


def test_picks_read_head_and_tail_rows() -> None:
    plans = [
        Plan.of(Context([1, 2], {(3, 4): [3, 4], (3,): [3], (5, 6, 7): [5, 6, 7]})),
        Plan.of(Context([8], {(9,): [9]})),
    ]
    tails = mc_plan.tails(plans)
    assert tails == [(0, [3, 4], 0)]
    where = mc_plan.picks(plans, tails)
    assert where.keys == [(0, (3, 4)), (0, (3,)), (0, (5, 6, 7)), (1, (9,))]
    # Head rows: plan 0 scores 3 positions (rows 0-2), plan 1 one (row 3).
    assert where.head.rows == [0, 0, 0, 1, 2, 3]
    assert where.head.ids == [3, 3, 5, 6, 7, 9]
    assert where.head.segments == [0, 1, 2, 2, 2, 3]
    # [3, 4] leaves the lead after 3: its 4 is read from the tail's only row.
    assert (where.tail.rows, where.tail.ids, where.tail.segments) == ([0], [4], [0])


def _greedy(seen: tuple[int, ...]) -> int:
    return sum(seen) * 7 % 12


def _logprob(seen: tuple[int, ...], token: int) -> float:
    """A made-up model: a deterministic function of everything seen and the next token, whose
    most likely token (of 0-11) is ``_greedy(seen)``."""
    if token == _greedy(seen):
        return -0.05
    return -(1.0 + (hash((seen, token)) % 1000) / 100.0)


def _score_through_plan(plans: list[Plan], tails: list[mc_plan.Tail]) -> list[dict]:
    """Head rows: the prefix positions from ``first_scored``; tail rows: each tail's fed tokens
    after the context and its depth of lead tokens; then the sums ``picks`` asks for."""
    head_seen = [
        tuple(plan.prefix[: i + 1])
        for plan in plans
        for i in range(plan.first_scored, len(plan.prefix))
    ]
    tail_seen = []
    for row, cont, n in tails:
        tokens, _ = mc_plan.fed(plans[row], cont, n)
        base = plans[row].entry.tokens + cont[:n]
        tail_seen += [tuple(base + tokens[: i + 1]) for i in range(len(tokens))]
    where = mc_plan.picks(plans, tails)
    totals = [0.0] * len(where.keys)
    greedy = [True] * len(where.keys)
    for source, seen in ((where.head, head_seen), (where.tail, tail_seen)):
        for row, token, segment in zip(source.rows, source.ids, source.segments, strict=True):
            totals[segment] += _logprob(seen[row], token)
            greedy[segment] &= _greedy(seen[row]) == token
    results: list[dict] = [{} for _ in plans]
    for (row, cont), total, is_greedy in zip(where.keys, totals, greedy, strict=True):
        results[row][cont] = (total, is_greedy)
    return results


@pytest.mark.parametrize("order", ["packed", "longest-fed-first"])
def test_plans_score_every_continuation_as_token_by_token(order: str) -> None:
    pairs = [
        ([1, 2, 3, 4, 5, 6], [7]),
        ([1, 2, 3, 4, 5, 6], [7, 8, 9, 10]),
        ([1, 2, 3, 4, 5, 6], [7, 8, 11]),
        ([1, 2, 3, 4, 5, 6], [2, 2]),
        ([1, 2, 3, 4, 5, 6], [3, 0]),  # the greedy continuation
        ([1, 2, 3, 4, 5, 6], [7, 8, 9, 10]),
        ([6, 5], [1]),
        ([6, 5], [1, 2]),
        ([9, 9, 9, 9, 9, 9, 9, 9], [3, 4, 5]),  # cut from the left
        ([9, 9, 9, 9, 9, 9, 9, 9], [3]),
        ([4], [4, 4, 4, 4, 4]),
    ]
    max_length = 8
    grouping = mc_plan.group(pairs, max_length)
    scores = {}
    for batch in mc_plan.batches(grouping.contexts.values(), 2):
        tails = mc_plan.tails(batch)
        if order == "longest-fed-first":  # as the KV-cache strategy runs them
            tails.sort(key=lambda tail: tail[2] - len(tail[1]))
        for plan, answers in zip(batch, _score_through_plan(batch, tails), strict=True):
            scores.update({(plan.key, cont): answer for cont, answer in answers.items()})
    answers = grouping.answers(scores)
    assert any(is_greedy for _, is_greedy in answers)
    for (context, continuation), (total, is_greedy) in zip(pairs, answers, strict=True):
        seen = mc_plan.window(context, continuation, max_length)
        expected = sum(
            _logprob(tuple(seen + continuation[:i]), t) for i, t in enumerate(continuation)
        )
        assert math.isclose(total, expected, rel_tol=1e-12)
        assert is_greedy == all(
            _greedy(tuple(seen + continuation[:i])) == t for i, t in enumerate(continuation)
        )


@pytest.mark.parametrize("max_length", [1, 3, 5, 8])
def test_window_size_is_the_window_s_length(max_length: int) -> None:
    for n_context in range(0, 7):
        for n_continuation in range(1, max_length + 1):
            context, continuation = list(range(n_context)), [99] * n_continuation
            expected = len(mc_plan.window(context, continuation, max_length))
            assert mc_plan.window_size(n_context, n_continuation, max_length) == expected
