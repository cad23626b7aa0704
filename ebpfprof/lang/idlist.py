"""Lists of CPU, process and thread ids as users write them: ``0-3,6``."""
from __future__ import annotations

__all__ = ["parse_id_list", "format_id_list"]


def parse_id_list(text: str, what: str = "list") -> tuple[int, ...]:
    """Parse ``"0-3,6"`` into ``(0, 1, 2, 3, 6)`` (sorted, no duplicates).

    Raises ValueError with a one-line reason naming the bad part.
    """
    ids: set[int] = set()
    if not text.strip():
        raise ValueError(f"empty {what}")
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise ValueError(f"empty item in {what} {text!r}")
        lo_text, sep, hi_text = part.partition("-")
        try:
            lo = int(lo_text, 10)
            hi = int(hi_text, 10) if sep else lo
        except ValueError:
            raise ValueError(f"{part!r} in {what} {text!r} is not a number or a range like 0-3") from None
        if lo < 0 or hi < lo:
            raise ValueError(f"bad range {part!r} in {what} {text!r}")
        if hi - lo > 1 << 22:
            raise ValueError(f"range {part!r} in {what} {text!r} is too large")
        ids.update(range(lo, hi + 1))
    return tuple(sorted(ids))


def format_id_list(ids: tuple[int, ...] | list[int]) -> str:
    """The inverse of parse_id_list: ``(0, 1, 2, 3, 6)`` → ``"0-3,6"``."""
    out: list[str] = []
    ids = sorted(set(ids))
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(out)
