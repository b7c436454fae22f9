"""Which settings differ from the ones a run, store or checkpoint recorded.

A rerun into the same place must be made with the same settings (or be refused, or replace
it): this says which ones changed, for the message that refuses it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

_MISSING: Any = object()


@dataclass(frozen=True)
class Difference:
    key: str  # dotted below the top level: "train.learning_rate"
    old: Any  # None where the recorded settings lack the key
    new: Any  # None where the current settings lack it

    def __str__(self) -> str:
        return f"{self.key}: {self.old!r} there, {self.new!r} now"


def differences(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    ignore: Collection[str] = (),
    nested: bool = False,
    sort: bool = False,
) -> list[Difference]:
    """Every setting whose recorded (``old``) and current (``new``) values differ.

    Keys come in the recorded order, then the new ones (``sort``: alphabetically); keys in
    ``ignore`` are skipped. With ``nested``, two mappings under one key are compared key by
    key (dotted keys); otherwise a whole value is one setting.
    """
    return list(_walk(old, new, ignore, nested, sort, ""))


def first_difference(old: Mapping[str, Any], new: Mapping[str, Any], **how: Any) -> str:
    """The first difference as ``key: old there, new now`` (``differences`` says how)."""
    found = differences(old, new, **how)
    return str(found[0]) if found else "unknown difference"


def _walk(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    ignore: Collection[str],
    nested: bool,
    sort: bool,
    prefix: str,
) -> Iterator[Difference]:
    keys = list(dict.fromkeys([*old, *new]))
    for key in sorted(keys) if sort else keys:
        if key in ignore:
            continue
        a, b = old.get(key, _MISSING), new.get(key, _MISSING)
        if nested and isinstance(a, Mapping) and isinstance(b, Mapping):
            yield from _walk(a, b, (), nested, sort, f"{prefix}{key}.")
        elif a is _MISSING or b is _MISSING or a != b:
            yield Difference(
                f"{prefix}{key}", None if a is _MISSING else a, None if b is _MISSING else b
            )
