"""What every stage script shares: friendly errors, quiet libraries, its paths from the command line.

The processed sets a stage reads are loaded by `data.sets.load_sets`."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Callable

from .errors import UserError


def stage_args(description: str, which: tuple[str, ...] = (), many: tuple[str, ...] = (),
               **paths: str) -> argparse.Namespace:
    """Parse `--name PATH` for each keyword (its value is the help); every path is required, so
    dvc.yaml, which declares them as deps and outputs, is the only place they are written.
    `which`: the choices of a leading positional argument (e.g. target | oracle); `many`: the
    keywords that take one path or more (`--name A B C`)."""
    parser = argparse.ArgumentParser(description=description)
    if which:
        parser.add_argument("which", choices=which)
    for name, help_text in paths.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, required=True, type=Path, help=help_text,
                            nargs="+" if name in many else None)
    return parser.parse_args()


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage; user errors print one clear line and exit 2, without a traceback."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("transformers", "peft", "accelerate", "dvclive", "datasets"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    start = time.time()
    try:
        from .environment import check

        check()
        # A stage that imported the hardware module (at its top, before this runs) resolves
        # `auto` on this machine: machine.yaml must say what it resolves to. The others never
        # load torch for the check.
        if "unlearn_lab.models.hardware" in sys.modules:
            sys.modules["unlearn_lab.models.hardware"].check_machine()
        main()
        if "unlearn_lab.models.hardware" in sys.modules:
            sys.modules["unlearn_lab.models.hardware"].end_processes()
        # A stage that loaded a model imported timing, which counted its work (for `make time`).
        if "unlearn_lab.timing" in sys.modules:
            sys.modules["unlearn_lab.timing"].log_work(
                " ".join([Path(sys.argv[0]).stem, *(a for a in sys.argv[1:2] if not a.startswith("-"))]))
        print(f"[{Path(sys.argv[0]).stem}] done in {time.time() - start:.1f} s")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)

