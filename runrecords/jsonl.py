"""JSON Lines parsed one line at a time; a line that is not JSON is an error naming it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

# (line number, reason) -> the caller's error, e.g. ``TaskDataError(f"{file}:{line}: {reason}")``
BadLine = Callable[[int, str], Exception]


def json_lines(lines: Iterable[str], bad_line: BadLine) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line, numbered from 1.

    Give text split with ``text.split("\\n")``, not ``str.splitlines``: that would also cut at
    U+2028 and friends, which ``json.dumps(ensure_ascii=False)`` writes raw inside strings
    (model outputs contain them). An open text file works too (it splits on newlines only).
    """
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as err:
            raise bad_line(number, f"not JSON ({err.msg})") from None
