"""Independent check of ``tasks.language.hangul_share`` on LogicKor's published answers.

Recomputes each answer's Hangul share by another route (a letter is Hangul when its Unicode
name starts with HANGUL, instead of the module's code-point ranges; code left out the same
way) and prints how many answers differ. Usage (from the checkout):

    PYTHONPATH=. python bench/language_check.py [DATA_DIR/logickor]
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from pathlib import Path

from tasks.language import hangul_share

CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.S)


def share_by_name(text: str) -> float | None:
    letters = [c for c in CODE.sub(" ", text) if unicodedata.category(c).startswith("L")]
    if not letters:
        return None
    return sum(unicodedata.name(c, "").startswith("HANGUL") for c in letters) / len(letters)


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/logickor")
    answers, differ = 0, []
    for path in sorted(root.rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8-sig").splitlines():
            for answer in json.loads(line).get("outputs") or []:
                answers += 1
                a, b = hangul_share(answer), share_by_name(answer)
                if (a is None) != (b is None) or (a is not None and abs(a - b) > 1e-12):
                    differ.append((path.name, a, b, answer[:60]))
    print(f"{answers} answers, {len(differ)} differ")
    for row in differ[:10]:
        print(row)


if __name__ == "__main__":
    main()
