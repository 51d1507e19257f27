"""Charts as SVG text, drawn by hand: a frame with round ticks, bars, lines, labels.

The report needs two kinds of chart (bars, and a step line with vertical cuts), so a plotting
library would bring 100 MB to draw what these few functions draw. Text stays text (selectable,
searchable, readable by a test), sized in pixels at the chart's own width: the report shows each
chart at that width, so 12 px in the SVG is 12 px on the screen.

    >>> ticks(104)
    [0, 20, 40, 60, 80, 100]
    >>> ticks(3)
    [0, 1, 2, 3]
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

FONT = "system-ui,-apple-system,'Segoe UI',sans-serif"
TEXT = "#1d1d1f"
MUTED = "#555"
GRID = "#e6e6ea"
CHAR_WIDTH = 6.7  # px per character of 12 px text, a little over system-ui's average: for layout
DASHES = {"solid": None, "dashed": "6 4", "dotted": "2 3"}


def ticks(top: float, most: int = 6) -> list[int]:
    """Round tick values from 0 to ``top``: a step of 1, 2 or 5 times a power of ten (at least 1),
    at most ``most`` steps."""
    if top <= 0:
        return [0]
    raw = top / most
    power = 10 ** math.floor(math.log10(raw))
    step = max(1, next(int(m * power) for m in (1, 2, 5, 10) if m * power >= raw))
    return list(range(0, int(top) + 1, step))


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def text(x: float, y: float, label: str, size: int = 12, anchor: str = "start", **attrs: str) -> str:
    """A line of text; ``anchor`` is start, middle or end; attrs: fill, font-weight, transform..."""
    extra = "".join(f' {k.replace("_", "-")}="{html.escape(v)}"' for k, v in attrs.items())
    return (
        f'<text x="{_num(x)}" y="{_num(y)}" font-size="{size}" text-anchor="{anchor}"{extra}>'
        f"{html.escape(label)}</text>"
    )


def line(
    x1: float, y1: float, x2: float, y2: float, color: str, width: float = 1, dash: str = "solid"
) -> str:
    pattern = DASHES[dash]
    return (
        f'<line x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" y2="{_num(y2)}" stroke="{color}" '
        f'stroke-width="{_num(width)}"' + (f' stroke-dasharray="{pattern}"' if pattern else "") + "/>"
    )


def rect(x: float, y: float, width: float, height: float, color: str) -> str:
    return f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(width)}" height="{_num(height)}" fill="{color}"/>'


@dataclass(frozen=True)
class Axes:
    """A plot area at (left, top), ``width`` x ``height`` pixels, showing 0..x_max by 0..y_max."""

    left: float
    top: float
    width: float
    height: float
    x_max: float
    y_max: float

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height

    def x(self, value: float) -> float:
        return self.left + self.width * min(max(value, 0), self.x_max) / (self.x_max or 1)

    def y(self, value: float) -> float:
        return self.bottom - self.height * min(max(value, 0), self.y_max) / (self.y_max or 1)

    def frame(self, title: str, x_label: str, y_label: str, y_unit: str = "") -> list[str]:
        """Grid lines and tick labels on both axes, the axis labels and the title above."""
        parts = []
        for v in ticks(self.y_max, 5):
            y = self.y(v)
            parts.append(line(self.left, y, self.right, y, GRID))
            parts.append(text(self.left - 6, y + 4, f"{v:,}{y_unit}", anchor="end", fill=MUTED))
        for v in ticks(self.x_max, 6):
            x = self.x(v)
            parts.append(line(x, self.bottom, x, self.bottom + 4, MUTED))
            parts.append(text(x, self.bottom + 17, f"{v:,}", anchor="middle", fill=MUTED))
        parts.append(line(self.left, self.bottom, self.right, self.bottom, MUTED))
        parts.append(line(self.left, self.top, self.left, self.bottom, MUTED))
        parts.append(text((self.left + self.right) / 2, self.bottom + 36, x_label, anchor="middle"))
        middle = (self.top + self.bottom) / 2
        turn = f"rotate(-90 {_num(self.left - 56)} {_num(middle)})"
        parts.append(text(self.left - 56, middle, y_label, anchor="middle", transform=turn))
        parts.append(text(self.left, self.top - 30, title, size=14, font_weight="600"))
        return parts

    def steps(self, values: list[float], color: str) -> str:
        """values[i] from x = i to i + 1 (the last to its own x), as one path."""
        if not values:
            return ""
        d = [f"M{_num(self.x(0))},{_num(self.y(values[0]))}"]
        for i in range(1, len(values)):
            if values[i] != values[i - 1]:
                d.append(f"H{_num(self.x(i))}V{_num(self.y(values[i]))}")
        d.append(f"H{_num(self.x(len(values) - 1))}")
        return f'<path d="{"".join(d)}" fill="none" stroke="{color}" stroke-width="1.5"/>'


def legend(
    entries: list[tuple[str, str, float, str]], left: float, top: float, right: float
) -> tuple[list[str], float]:
    """Entries (label, color, line width, dash) in rows from ``left`` to ``right``: the SVG parts
    and the height they take."""
    parts, x, y = [], left, top + 12
    for label, color, width, dash in entries:
        span = 30 + len(label) * CHAR_WIDTH + 22
        if x > left and x + span > right:
            x, y = left, y + 20
        parts.append(line(x, y - 4, x + 24, y - 4, color, width, dash))
        parts.append(text(x + 30, y, label))
        x += span
    return parts, y + 8 - top


def document(width: int, height: float, parts: list[str]) -> str:
    """A standalone SVG of ``width`` x ``height`` pixels on white."""
    h = math.ceil(height)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" viewBox="0 0 {width} {h}" '
        f'font-family="{FONT}" fill="{TEXT}">{rect(0, 0, width, h, "#fff")}' + "".join(parts) + "</svg>"
    )
