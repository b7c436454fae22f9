"""Data files are UTF-8; a file in another encoding is refused in one line that says how to fix it.

Copies of NSMC and of other Korean sets often circulate re-encoded as cp949 (EUC-KR). Decoding
such a file under a guessed encoding would make a run's inputs depend on a guess, so the file is
refused instead, with its line and byte, and (when it decodes as cp949) the command that
converts it once.
"""

from __future__ import annotations

from pathlib import Path

from tasks.errors import TaskDataError

# Encodings Korean text files are commonly found in, tried only to word the error.
_LIKELY = ("cp949",)


def read_utf8(path: Path) -> str:
    """``path``'s text, decoded as UTF-8 (a leading byte-order mark is dropped)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise not_utf8(path, raw, err) from None


def not_utf8(path: Path, raw: bytes, err: UnicodeDecodeError) -> TaskDataError:
    """The one-line error for ``raw`` (``path``'s bytes), which failed to decode as UTF-8."""
    offset = err.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
    line = raw.count(b"\n", 0, offset) + 1
    message = f"{path}:{line}: not UTF-8 (byte {offset}: 0x{raw[offset]:02x})"
    for encoding in _LIKELY:
        try:
            raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        return TaskDataError(
            f"{message}; it reads as {encoding}: convert it to UTF-8 once "
            f"(iconv -f {encoding} -t utf-8 FILE > FILE.new, then rename FILE.new to FILE)"
        )
    return TaskDataError(f"{message}; save it as UTF-8")
