"""Horizontal bars drawn with block characters, to an eighth of a cell."""

from __future__ import annotations

EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(value: float, scale: float, width: int) -> str:
    """A bar of `width` cells for `value` out of `scale` (its magnitude; at least a sliver
    for any value that is not zero), padded with spaces to `width`."""
    if scale <= 0 or width <= 0:
        return " " * max(width, 0)
    eighths = round(min(abs(value) / scale, 1.0) * width * 8)
    if value and not eighths:
        eighths = 1
    full, part = divmod(eighths, 8)
    text = "█" * full + (EIGHTHS[part] if part else "")
    return text.ljust(width)
