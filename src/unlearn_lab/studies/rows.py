"""A study's rows carry each figure with its 95% interval as `<key>`, `<key>_low`, `<key>_high`
(CSV columns), from a metrics file's `<key>` and `<key>_ci95`; the tables quote them as
`value [low, high]` and the figures draw them as error bars."""
from __future__ import annotations

import numpy as np


def put(row: dict, key: str, metrics: dict, metric: str | None = None) -> None:
    """`row[key]` and its interval from `metrics[metric]` and `metrics[metric + "_ci95"]`
    (metric defaults to key); None where the file has none."""
    metric = metric or key
    row[key] = metrics.get(metric)
    low, high = metrics.get(f"{metric}_ci95") or (None, None)
    row[f"{key}_low"], row[f"{key}_high"] = low, high


def cell(row: dict, key: str, fmt: str) -> str:
    """`value [low, high]` in `fmt`; the value alone where the interval is missing or is the point
    itself; empty where there is no value."""
    value, low, high = row.get(key), row.get(f"{key}_low"), row.get(f"{key}_high")
    if value is None:
        return ""
    text = format(value, fmt)
    if low is None or high is None or low == high == value:
        return text
    return f"{text} [{format(low, fmt)}, {format(high, fmt)}]"


def _column(rows: list[dict], key: str) -> np.ndarray:
    return np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype=float)


def error_bars(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, 2 x n distances to the interval's ends) for matplotlib's `errorbar`; a missing
    end draws no bar on its side."""
    values = _column(rows, key)
    return values, np.vstack([np.nan_to_num(values - _column(rows, f"{key}_low")),
                              np.nan_to_num(_column(rows, f"{key}_high") - values)])
