"""Matplotlib for jobs: figures drawn without pyplot, imported only when a plot is drawn, and the
search's candidates plot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PARAM_PREFIX = "param."  # the candidates table's parameter columns (search.Outcome.table)


def new_figure(figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """A figure and its axes, outside pyplot: no backend is chosen for the process (a notebook's own
    plots keep theirs), no figure is registered with pyplot to close, and `savefig` draws with Agg."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize)
    return figure, figure.subplots()


def candidates_figure(table: pd.DataFrame, metric: str, title: str) -> Figure:
    """The validation metric of each search candidate (mean ± std, the best starred), one row per
    candidate, labelled with its index and parameter values."""
    labels = candidate_labels(table)
    rows = list(range(len(table)))
    figure, axes = new_figure(
        (max(6.0, 5.0 + 0.07 * max(map(len, labels), default=0)), max(3.0, 1.5 + 0.35 * len(table)))
    )
    axes.errorbar(table[metric], rows, xerr=table[f"{metric}_std"].fillna(0), fmt="o", capsize=3)
    best = [row for row, is_best in zip(rows, table["best"], strict=True) if is_best]
    axes.plot(table[metric].iloc[best], best, marker="*", markersize=16, color="tab:orange", linestyle="", label="best")
    axes.set_yticks(rows, labels)
    for row in best:
        axes.get_yticklabels()[row].set_fontweight("bold")
    axes.invert_yaxis()  # candidate 0 on top, as in candidates.csv
    axes.set_xlabel(f"{metric} (validation mean ± std)")
    axes.set_title(title)
    axes.legend(loc="best")
    figure.tight_layout()
    return figure


def candidate_labels(table: pd.DataFrame) -> list[str]:
    """'<index>: name=value, ...' for each candidate (a row of the candidates table)."""
    names = [column for column in table.columns if column.startswith(PARAM_PREFIX)]
    texts = {name: value_texts(list(table[name])) for name in names}
    return [
        f"{index}: " + ", ".join(f"{name.removeprefix(PARAM_PREFIX)}={texts[name][row]}" for name in names)
        for row, index in enumerate(table["candidate"])
    ]


def value_texts(values: list[Any]) -> list[str]:
    """A parameter's values as short text: floats (a random search draws long ones) to the fewest
    significant digits, at least 3, that keep different values apart; other values as they are."""
    if not all(isinstance(value, float) for value in values):
        return [str(value) for value in values]
    for digits in range(3, 18):  # 17 significant digits tell any two doubles apart
        texts = [str(float(f"{value:.{digits}g}")) for value in values]
        if len(set(texts)) == len(set(values)):
            break
    return texts
