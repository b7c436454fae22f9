"""Planning for shared-context multiple-choice scoring, over token ids only (no model, no torch).

Given lm-eval's ``(context, continuation)`` token pairs, this module decides which tokens run
in which forward pass and where each continuation's log-probabilities are read afterwards:

- ``group``: requests grouped by the context the model actually sees (lm-eval's left
  truncation applied), identical continuations of one context kept once; ``Grouping.answers``
  maps the per-context scores back to the requests, in order.
- ``Plan``: how one context runs: the context followed by its longest continuation (the lead),
  which scores the lead and every other continuation while it agrees with the lead; the rest
  of each other continuation (its tail) runs after the part it shares.
- ``batches``: plans longest first, ``batch_size`` contexts per forward pass.
- ``tails`` / ``chunks``: the tails of a batch, and how the KV-cache path splits them into
  passes of similar length.
- ``picks``: for every scored continuation token, the output row that predicts it and its
  id, so that a strategy's log-probabilities (``head`` rows: ``plan.scored`` per context;
  ``tail`` rows: one per fed tail token) turn into one sum per continuation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

Tokens = tuple[int, ...]
Score = tuple[float, bool]  # (log-probability, is-greedy), as lm-eval returns them
Tail = tuple[int, list[int], int]  # (row of the batch, continuation, tokens shared with the lead)

# A forward pass costs about as much as this many token positions more (launching it, the
# copy of the cache rows), and a split must also save this share of the unsplit pass: tails
# are split only where padding would waste a lot (hellaswag's endings), never for a token.
PASS_COST_TOKENS = 128
PASS_COST_SHARE = 0.2


def window(context: Sequence[int], continuation: Sequence[int], max_length: int) -> list[int]:
    """The context tokens lm-eval's ``hf`` feeds before ``continuation``.

    lm-eval keeps the last ``max_length + 1`` tokens of context + continuation and drops the
    final one, so a long context loses tokens from the left, by an amount that depends on the
    continuation's length (choices of one question may see different contexts).
    """
    whole = [*context, *continuation][-(max_length + 1) :]
    return whole[: len(whole) - len(continuation)]


def window_size(context: int, continuation: int, max_length: int) -> int:
    """How many context tokens ``window`` keeps, from the two lengths."""
    return min(context + continuation, max_length + 1) - continuation


def is_truncated(context: Sequence[int], continuation: Sequence[int], max_length: int) -> bool:
    """Whether lm-eval's ``hf`` cuts this request's context from the left."""
    return len(context) + len(continuation) > max_length + 1


@dataclass
class Context:
    """One distinct context (as the model sees it) and the distinct continuations asked of it."""

    tokens: list[int]
    continuations: dict[Tokens, list[int]] = field(default_factory=dict)


@dataclass
class Grouping:
    """Requests grouped by context: ``slots[i]`` is request ``i``'s (context, continuation)."""

    contexts: dict[Tokens, Context]
    slots: list[tuple[Tokens, Tokens]]
    truncated: int  # requests whose context lm-eval cuts from the left

    def answers(self, scores: dict[tuple[Tokens, Tokens], Score]) -> list[Score]:
        """One score per request, in request order (repeated requests share theirs)."""
        return [scores[slot] for slot in self.slots]


def group(pairs: Iterable[tuple[list[int], list[int]]], max_length: int) -> Grouping:
    """Group ``(context, continuation)`` token pairs by the context the model will see.

    Every pair must be scorable: a non-empty continuation of at most ``max_length`` tokens
    and a non-empty window (callers check, so that they can name the request)."""
    contexts: dict[Tokens, Context] = {}
    slots: list[tuple[Tokens, Tokens]] = []
    truncated = 0
    for context, continuation in pairs:
        truncated += is_truncated(context, continuation, max_length)
        seen = window(context, continuation, max_length)
        key, cont_key = tuple(seen), tuple(continuation)
        entry = contexts.setdefault(key, Context(seen))
        entry.continuations.setdefault(cont_key, continuation)
        slots.append((key, cont_key))
    return Grouping(contexts, slots, truncated)


@dataclass
class Plan:
    """How one context runs. Its longest continuation leads: ``prefix`` is the context plus
    everything the lead feeds, so that one pass scores the lead and, for every other
    continuation, the tokens predicted while it agrees with the lead (``depth`` of its fed
    tokens are the lead's). ``tails`` are the continuations that go on from there, each with
    its depth."""

    entry: Context
    prefix: list[int]
    depth: dict[Tokens, int]
    tails: list[tuple[list[int], int]]

    @property
    def key(self) -> Tokens:
        return tuple(self.entry.tokens)

    @property
    def first_scored(self) -> int:
        """The prefix position that predicts every continuation's first token."""
        return len(self.entry.tokens) - 1

    @property
    def scored(self) -> int:
        """How many prefix positions score something (the lead's length)."""
        return len(self.prefix) - self.first_scored

    @property
    def packed_length(self) -> int:
        """The prefix and every tail's fed tokens, one after the other (the packed row)."""
        return len(self.prefix) + sum(len(cont) - 1 - n for cont, n in self.tails)

    @classmethod
    def of(cls, entry: Context) -> Plan:
        conts = list(entry.continuations.values())
        lead = max(conts, key=len)[:-1]  # the tokens the lead feeds to the model
        depth: dict[Tokens, int] = {}
        tails: list[tuple[list[int], int]] = []
        for cont in conts:
            n = 0
            while n < min(len(cont) - 1, len(lead)) and cont[n] == lead[n]:
                n += 1
            depth[tuple(cont)] = n
            if len(cont) - 1 > n:
                tails.append((cont, n))
        return cls(entry, entry.tokens + lead, depth, tails)


def batches(contexts: Iterable[Context], batch_size: int) -> list[list[Plan]]:
    """Plans of ``batch_size`` contexts per forward pass, longest first, as lm-eval orders its
    requests: similar lengths share a batch (little padding) and the first batch shows at
    once whether memory suffices."""
    plans = sorted((Plan.of(entry) for entry in contexts), key=lambda p: (-len(p.prefix), p.prefix))
    return [plans[start : start + batch_size] for start in range(0, len(plans), batch_size)]


def tails(plans: Sequence[Plan]) -> list[Tail]:
    """Every tail of a batch, by row and then in each plan's order."""
    return [(row, cont, n) for row, plan in enumerate(plans) for cont, n in plan.tails]


def fed(plan: Plan, cont: list[int], depth: int) -> tuple[list[int], int]:
    """The tokens a tail feeds and how many tokens before them it sees (its first position)."""
    return cont[depth:-1], len(plan.entry.tokens) + depth


def chunks(lengths: Sequence[int]) -> list[slice]:
    """Forward passes for rows sorted longest first: every row of a pass is padded to its
    first (longest) row, so one pass over rows of very different lengths computes mostly
    padding, while each extra pass has a fixed cost. Dynamic programming over the cut
    points minimises padded positions plus a per-pass cost."""
    n = len(lengths)
    per_pass = max(PASS_COST_TOKENS, PASS_COST_SHARE * n * lengths[0])
    best = [0.0] + [float("inf")] * n  # best[i]: cheapest way to run rows[:i]
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        for start in range(end):
            cost = best[start] + (end - start) * lengths[start] + per_pass
            if cost < best[end]:
                best[end], cut[end] = cost, start
    passes, end = [], n
    while end > 0:
        passes.append(slice(cut[end], end))
        end = cut[end]
    return passes[::-1]


@dataclass
class Source:
    """Scored tokens read from one block of log-probability rows: the row that predicts each
    token, the token's id, and the index (in ``Picks.keys``) of its continuation."""

    rows: list[int] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    segments: list[int] = field(default_factory=list)

    def add(self, first_row: int, ids: Sequence[int], segment: int) -> None:
        self.rows += range(first_row, first_row + len(ids))
        self.ids += ids
        self.segments += [segment] * len(ids)


@dataclass
class Picks:
    """Where a batch's scores come from: ``keys[i]`` is (row of the batch, continuation) of
    segment ``i``; ``head`` reads the rows of the lead pass (``plan.scored`` per plan, in
    batch order), ``tail`` the rows of the tail tokens (one per fed token, in the order of
    the ``tails`` list the strategy ran)."""

    keys: list[tuple[int, Tokens]]
    head: Source
    tail: Source


def picks(plans: Sequence[Plan], tails: Sequence[Tail]) -> Picks:
    """Every scored token of every continuation of ``plans``: a continuation's first
    ``depth + 1`` tokens are predicted by the lead's rows, the rest by its tail's rows."""
    tail_at: dict[tuple[int, Tokens], int] = {}
    offset = 0
    for row, cont, n in tails:
        tail_at[(row, tuple(cont))] = offset
        offset += len(cont) - 1 - n
    keys: list[tuple[int, Tokens]] = []
    head, tail = Source(), Source()
    base = 0
    for row, plan in enumerate(plans):
        for cont_key, cont in plan.entry.continuations.items():
            n_head = min(len(cont), plan.depth[cont_key] + 1)
            head.add(base, cont[:n_head], len(keys))
            if len(cont) > n_head:
                tail.add(tail_at[(row, cont_key)], cont[n_head:], len(keys))
            keys.append((row, cont_key))
        base += plan.scored
    return Picks(keys, head, tail)
