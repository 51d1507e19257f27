"""A field's figure, drawn: texts per length with the overflow bar, and the share of texts each cut
keeps whole, side by side, with the cuts as vertical lines and one legend under both.

:class:`~lenprof.report.figures.FigureData` decides what is shown (the axis, the bars, the
overflow, the cuts and their words); this module only places it, with ``svg.py``.
"""

from __future__ import annotations

import numpy as np

from lenprof.report import svg
from lenprof.report.figures import FigureData

WIDTH = 1040  # px: the report's column, so the figure is shown at its own size
PANEL = WIDTH // 2
PLOT_HEIGHT = 210
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 70, 18, 56, 46
BAR = "#7f8c9d"
OVERFLOW = "#d95f02"
OVERFLOW_TEXT = "#a94300"  # the bar's orange, dark enough to read as text on white
RECOMMENDED = "#238b45"
CUT_COLORS = {"p90": "#9ecae1", "p95": "#4292c6", "p99": "#08519c", "max": "#6a51a3", "cap": "#cb181d"}


def _axes(panel: int, x_max: float, y_max: float) -> svg.Axes:
    return svg.Axes(
        left=panel * PANEL + MARGIN_LEFT,
        top=MARGIN_TOP,
        width=PANEL - MARGIN_LEFT - MARGIN_RIGHT,
        height=PLOT_HEIGHT,
        x_max=x_max,
        y_max=y_max,
    )


def _cuts(data: FigureData, chosen: int) -> list[tuple[str, str, float, str, int]]:
    """(label, color, width, dash, where drawn) of every cut, the recommended one last and boldest;
    a cut past the axis is dotted at the axis' end."""
    out = []
    for name, max_len in data.cuts.items():
        if name != "recommended":
            dash = "dotted" if max_len > data.axis_max else "dashed"
            out.append((data.cut_label(name, max_len), CUT_COLORS.get(name, "#999"), 1.2, dash, max_len))
    dash = "dotted" if chosen > data.axis_max else "solid"
    out.append((data.cut_label("recommended", chosen), RECOMMENDED, 2.5, dash, chosen))
    return out


def _histogram(data: FigureData) -> list[str]:
    tallest = max([n for _, n in data.bars] + [data.overflow, 1])
    ax = _axes(0, data.axis_end, tallest * 1.08)
    bins = f" (bins of {data.bin_width})" if data.bin_width > 1 else ""
    parts = ax.frame(f"{data.field}: texts per length{bins}", "tokens", "texts")
    for start, n in data.bars:
        x0, x1 = ax.x(start), ax.x(start + data.bin_width)
        parts.append(svg.rect(x0, ax.y(n), max(x1 - x0, 0.8), ax.bottom - ax.y(n), BAR))
    if data.overflow:
        x0, x1 = ax.x(data.overflow_at), ax.x(data.overflow_at + 2 * data.bin_width)
        top = min(ax.y(data.overflow), ax.bottom - 4)  # one text still shows as a bar
        parts.append(svg.rect(x0, top, max(x1 - x0, 4), ax.bottom - top, OVERFLOW))
        parts.append(
            svg.text(ax.right, ax.top - 10, data.overflow_label(), size=12, anchor="end", fill=OVERFLOW_TEXT)
        )
    return parts


def _coverage(data: FigureData, covered: np.ndarray) -> list[str]:
    ax = _axes(1, data.axis_end, 100)
    whole = f" (100% at {data.longest:,})" if data.overflow else ""
    parts = ax.frame(
        f"{data.field}: coverage by cut{whole}", "max_len (tokens)", "% of texts untruncated", "%"
    )
    parts.append(ax.steps((100 * covered / max(data.count, 1)).tolist(), "#333"))
    return parts


def field_svg(data: FigureData, counts: np.ndarray, chosen: int) -> str:
    """The figure of one field as a standalone SVG; ``counts`` is the field's histogram (texts per
    length), of which the coverage panel draws the running share up to the axis."""
    covered = np.cumsum(counts[: data.axis_max + 1])
    parts = _histogram(data) + _coverage(data, covered)
    cuts = _cuts(data, chosen)
    for panel in (0, 1):
        ax = _axes(panel, data.axis_end, 1)
        for _, color, width, dash, at in cuts:
            x = ax.x(min(at, data.axis_end))
            parts.append(svg.line(x, ax.top, x, ax.bottom, color, width, dash))
    top = MARGIN_TOP + PLOT_HEIGHT + MARGIN_BOTTOM
    entries = [(label, color, width, dash) for label, color, width, dash, _ in cuts]
    drawn, height = svg.legend(entries, MARGIN_LEFT, top, WIDTH - MARGIN_RIGHT)
    return svg.document(WIDTH, top + height, parts + drawn)
