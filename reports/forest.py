"""The claim of a fusion run as one chart: fused minus clm-only per task and training seed,
with each 95% interval, and the pooled difference per task (a forest plot).

Oriented so that **right of the zero line is fused better** on every row: for a metric where
lower is better (bits per byte, perplexities) the plotted value is clm-only - fused, and the
panel says so. The numbers written beside each row are the plain fused - clm-only in the
metric's own units, with a word (better / worse / level) that reads the direction and whether
the interval excludes 0. One panel per task and setting, each on its own scale: an accuracy
difference of 0.05 and a bits-per-byte difference of 0.003 do not share an axis.
"""

from __future__ import annotations

from dataclasses import dataclass

from reports import plots
from reports.compare import setting_label
from reports.seeds import Pooled, PooledRow
from reports.stats import Interval

RIGHT_IS_BETTER = "right of 0: fused better than clm-only"
_POOLED_COLOR, _SEED_COLOR = "#1d2433", "#4C72B0"


@dataclass(frozen=True)
class ForestRow:
    label: str  # "seed 1", "pooled (2/3 seeds)"
    diff: float  # fused - clm-only, the metric's units
    interval: Interval | None
    pooled: bool = False


@dataclass(frozen=True)
class ForestPanel:
    task: str
    metric: str
    setting: int | str
    higher_is_better: bool
    rows: list[ForestRow]

    @property
    def title(self) -> str:
        arrow = "" if self.higher_is_better else " ↓"
        return f"{self.task} ({self.metric}{arrow}, {setting_label(self.setting)})"


def verdict(diff: float, interval: Interval | None, higher_is_better: bool) -> str:
    """'fused better' / 'fused worse' where the interval excludes 0, else 'level'."""
    if interval is None:
        return ""
    if interval.low <= 0 <= interval.high:
        return "level"
    gain = diff if higher_is_better else -diff
    return "fused better" if gain > 0 else "fused worse"


def row_text(diff: float, interval: Interval | None, places: int = 4) -> str:
    ci = f" [{interval.low:+.{places}f}, {interval.high:+.{places}f}]" if interval else ""
    return f"{diff:+.{places}f}{ci}"


def panels(pooled: Pooled) -> list[ForestPanel]:
    """One panel per primary (task, setting): a row per seed, then the pooled row (only with
    several seeds: one seed's row is its own pool)."""
    out = []
    for r in pooled.rows:
        if not r.primary:
            continue
        rows = [
            ForestRow(f"seed {s}", d, i)
            for s, d, i in zip(r.seeds, r.diffs, r.seed_intervals, strict=True)
        ]
        if len(r.seeds) > 1:
            rows.append(
                ForestRow(f"pooled ({r.agree}/{len(r.seeds)} seeds)", r.diff, r.interval, True)
            )
        out.append(ForestPanel(r.task, r.metric, r.setting, r.higher_is_better, rows))
    return out


def pooled_row_text(r: PooledRow) -> str:
    return row_text(r.diff, r.interval)


def _flip(value: float, higher: bool) -> float:
    return value if higher else -value


def forest_svg(panels_: list[ForestPanel]) -> str:
    """The panels stacked in one figure, as SVG text."""
    plt = plots._pyplot()
    if not panels_:
        fig, ax = plt.subplots(figsize=(4, 0.6))
        ax.axis("off")
        ax.text(0, 0.5, "no lm-eval task was compared", va="center")
        return plots.to_svg(fig)
    heights = [len(p.rows) + 2.2 for p in panels_] or [1.0]
    fig, axes = plt.subplots(
        len(heights),
        1,
        figsize=(8.6, 0.32 * sum(heights) + 0.9),
        gridspec_kw={"height_ratios": heights, "hspace": 1.4},
        squeeze=False,
    )
    # No figure title: the page's heading names the chart, and a suptitle would sit on the
    # first panel's title. Each panel says which way is better on its own x axis.
    for ax, panel in zip(axes[:, 0], panels_, strict=False):
        higher = panel.higher_is_better
        ys = list(range(len(panel.rows)))[::-1]
        reach = 0.0
        for y, row in zip(ys, panel.rows, strict=True):
            x = _flip(row.diff, higher)
            color = _POOLED_COLOR if row.pooled else _SEED_COLOR
            err = None
            if row.interval is not None:
                ends = sorted(_flip(v, higher) for v in (row.interval.low, row.interval.high))
                err = [[max(x - ends[0], 0)], [max(ends[1] - x, 0)]]
                reach = max(reach, abs(ends[0]), abs(ends[1]))
            reach = max(reach, abs(x))
            ax.errorbar(
                x,
                y,
                xerr=err,
                fmt="D" if row.pooled else "o",
                color=color,
                markersize=6 if row.pooled else 4,
                capsize=3,
                linewidth=1.6 if row.pooled else 1,
            )
            words = verdict(row.diff, row.interval, higher)
            ax.text(
                1.02,
                y,
                row_text(row.diff, row.interval) + (f"  {words}" if words else ""),
                transform=ax.get_yaxis_transform(),
                va="center",
                fontsize=8,
                fontweight="bold" if row.pooled else "normal",
            )
        ax.axvline(0, color="#5b6475", linewidth=0.8, linestyle="--")
        reach = reach or 1e-3
        ax.set_xlim(-1.15 * reach, 1.15 * reach)
        ax.set_ylim(-0.7, len(panel.rows) - 0.3)
        ax.set_yticks(ys, [r.label for r in panel.rows])
        for tick, row in zip(ax.get_yticklabels(), panel.rows, strict=True):
            if row.pooled:
                tick.set_fontweight("bold")
        how = "fused - clm-only" if higher else "clm-only - fused (lower is better)"
        ax.set_title(f"{panel.title}: {how}", loc="left", fontsize=9)
        ax.set_xlabel("← clm-only better        fused better →", fontsize=7.5)
        ax.tick_params(axis="x", labelsize=7)
        ax.spines["left"].set_visible(False)
    for ax in axes[len(panels_) :, 0]:
        ax.set_visible(False)
    return plots.to_svg(fig)
