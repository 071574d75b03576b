"""The represent stage's per-model part on disk. No unlearning changes what the target and the
oracle say, so `represent_readouts@<model>` reads each once (`representation.read_model`) and DVC
keeps its two files; `represent` then reads only the unlearned model and these:

- the model's pooled true-sentence states per set (`save_states`: an .npz of float arrays,
  no pickles), what the drift against the unlearned model needs;
- its report (JSON): its `model_probes`, the seconds they took, or the `reason` it has none (no
  oracle on the world benchmark).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from ..io import read_json

# The keys of a report that `analyse` takes, as `model_probes` returns them.
PROBE_KEYS = ("probe", "lens", "chance")


def save_states(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """The arrays by name, as `np.savez` writes them: no pickles, and the same bytes for the same
    arrays (zipfile dates each member 1980-01-01, not now), so a re-run that computes the same
    states leaves DVC the same output and `make verify` the same hash."""
    # A file object, not the path: np.savez would add .npz to a path without it.
    with open(path, "wb") as fh:
        np.savez(fh, allow_pickle=False, **arrays)


def load_states(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays `save_states` wrote, by name, as they were (dtype and shape)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise UserError(f"{path}: not found (run the stage that writes it first, e.g. `dvc repro`)") from None


def read_part(states_path: str | Path, report_path: str | Path) -> tuple[dict[str, np.ndarray], dict, float] | None:
    """(states, probes, seconds) of one model from the files `represent_readouts` wrote; None when
    its report gives the `reason` there is no such model."""
    report = read_json(report_path)
    if "reason" in report:
        return None
    missing = [k for k in (*PROBE_KEYS, "seconds") if k not in report]
    if missing:
        raise UserError(f"{report_path}: no {', '.join(missing)}; re-run the represent_readouts stage that writes it")
    return load_states(states_path), {k: report[k] for k in PROBE_KEYS}, report["seconds"]
