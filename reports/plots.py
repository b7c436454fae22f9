"""Charts for the HTML report, drawn with matplotlib and returned as self-contained SVG.

Each chart is an ``<img>`` with a ``data:image/svg+xml`` URI: nothing to fetch, and an SVG shown
as an image can never run script, whatever text (model names, categories) it carries. Text
stays text (``svg.fonttype: none``) so the browser draws Hangul with its own fonts.
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from reports.stats import Interval

_PALETTE = [
    "#4C72B0",
    "#DD8452",
    "#55A868",
    "#C44E52",
    "#8172B3",
    "#937860",
    "#DA8BC3",
    "#8C8C8C",
    "#CCB974",
    "#64B5CD",
]


# Height of one line of 8-point annotation text, in points (font size x line spacing, with
# room for the glyphs' descent): what the title must clear per annotation line.
_ANNOTATION_LINE_PT = 8 * 1.15 * 1.25


@dataclass
class Series:
    name: str
    values: list[float | None]  # one per group
    intervals: list[Interval | None] | None = None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": "fusebench",
            "font.size": 9,
            "font.family": ["DejaVu Sans", "sans-serif"],
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    return plt


def to_svg(fig) -> str:
    """The figure as SVG text (no date metadata: the same input, the same bytes)."""
    buffer = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Glyph missing from font": the browser draws Hangul
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    _pyplot().close(fig)
    return buffer.getvalue()


def svg_data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def to_data_uri(fig) -> str:
    """The figure as a base64 SVG data URI."""
    return svg_data_uri(to_svg(fig))


def grouped_bars(
    title: str,
    groups: Sequence[str],
    series: Sequence[Series],
    ylabel: str,
    annotations: Sequence[str] | None = None,
    ylim: tuple[float, float] | None = None,
) -> str:
    """Bars per group and series, with each series' 95% interval as an error bar."""
    plt = _pyplot()
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(
        figsize=(max(4.0, 1.1 * len(groups) * max(1, len(series)) ** 0.5 + 2), 3.2)
    )
    for i, s in enumerate(series):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        heights = [v if v is not None else 0.0 for v in s.values]
        ax.bar(xs, heights, width * 0.92, label=s.name, color=_PALETTE[i % len(_PALETTE)])
        if s.intervals:
            for x, v, ci in zip(xs, s.values, s.intervals, strict=True):
                if v is not None and ci is not None:
                    ax.errorbar(
                        x,
                        v,
                        yerr=[[max(v - ci.low, 0)], [max(ci.high - v, 0)]],
                        color="black",
                        capsize=3,
                        linewidth=1,
                    )
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    lines = max((len(text.splitlines()) for text in annotations or [] if text), default=0)
    if lines:
        # The annotations stand on the axes' top edge; the title goes above the tallest one
        # (a fixed pad put it on top of the interval text as soon as there were 2+ runs).
        top = ax.get_ylim()[1]
        for g, text in enumerate(annotations or []):
            if text:
                ax.text(g, top, text, ha="center", va="bottom", fontsize=8, linespacing=1.15)
    ax.set_title(title, pad=_ANNOTATION_LINE_PT * lines + 8)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return to_data_uri(fig)


def heatmap(
    title: str,
    rows: Sequence[str],
    columns: Sequence[str],
    values: Sequence[Sequence[float | None]],
    vmax: float,
) -> str:
    """A table of scores as colours with the numbers written in: many models at a glance."""
    import numpy as np

    plt = _pyplot()
    data = np.array([[np.nan if v is None else v for v in row] for row in values], dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 * len(columns) + 3, 0.32 * len(rows) + 1.2))
    image = ax.imshow(data, cmap="viridis", vmin=0, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(columns)), columns)
    ax.set_yticks(range(len(rows)), rows)
    ax.tick_params(top=True, labeltop=True, bottom=False, labelbottom=False, length=0)
    for r in range(len(rows)):
        for c in range(len(columns)):
            if not np.isnan(data[r, c]):
                light = data[r, c] < 0.6 * vmax
                ax.text(
                    c,
                    r,
                    f"{data[r, c]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if light else "black",
                )
    ax.set_title(title, pad=24)
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
    return to_data_uri(fig)


def win_tie_loss(
    title: str,
    groups: Sequence[str],
    shares: Sequence[tuple[float, float, float]],
    rates: Sequence[float | None],
    intervals: Sequence[Interval | None],
) -> str:
    """A horizontal bar per group split into win, tie and loss shares, with the win rate
    (ties as half) and its 95% interval drawn over it."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(groups) + 1.3))
    ys = list(range(len(groups)))[::-1]
    left = [0.0] * len(groups)
    for index, (name, color) in enumerate(
        (("win", "#55A868"), ("tie", "#B8BCC6"), ("loss", "#C44E52"))
    ):
        widths = [s[index] for s in shares]
        ax.barh(ys, widths, left=left, color=color, label=name, height=0.6)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    for y, rate, ci in zip(ys, rates, intervals, strict=True):
        if rate is None:
            continue
        err = [[rate - ci.low], [ci.high - rate]] if ci is not None else None
        ax.errorbar(rate, y, xerr=err, fmt="o", color="black", capsize=3, markersize=4)
    ax.axvline(0.5, color="#5b6475", linewidth=0.8, linestyle="--")
    ax.set_yticks(ys, list(groups))
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of judgments; dot: win rate (ties as half) with 95% interval")
    ax.set_title(title)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return to_data_uri(fig)
