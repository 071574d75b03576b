"""What every figure shares: headless matplotlib, the colours of the models, grouped bars with
their values, and saving without leaving half-written files."""
from __future__ import annotations

from pathlib import Path

import numpy as np

COLORS = {"target": "tab:red", "oracle": "tab:green", "unlearned": "tab:blue", "base": "tab:grey",
          "relearned": "tab:orange"}


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | Path, dpi: int = 100) -> None:
    """Write the figure through a temporary file, then close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, dpi=dpi)
    pyplot().close(fig)
    tmp.replace(path)


def grouped_bars(ax, groups: list[str], series: dict[str, list[float]]) -> None:
    """One group of bars per label, one bar per series (coloured by model), each with its value."""
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for i, (model, values) in enumerate(series.items()):
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=model, color=COLORS.get(model))
        for bar, v in zip(bars, values):
            if np.isfinite(v):
                ax.annotate(f"{v:.2f}", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom",
                            fontsize=7, xytext=(0, 1), textcoords="offset points")
    ax.set_xticks(x, groups)
    ax.legend(fontsize=9, loc="upper center", ncol=len(series), frameon=False)
