"""What every stage script shares: friendly errors, quiet libraries, the standard paths."""
from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Callable

from .io import UserError

PROCESSED = Path("data/processed")
RAW = Path("data/raw")
SETS = ("forget", "retain", "holdout", "world", "replay")


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage; user errors print one clear line and exit 2, without a traceback."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("transformers", "peft", "accelerate", "dvclive", "datasets"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    start = time.time()
    try:
        main()
        print(f"[{Path(sys.argv[0]).stem}{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}] "
              f"done in {time.time() - start:.1f} s")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


def load_sets(names=SETS) -> dict[str, list[dict]]:
    from .io import read_jsonl

    return {name: read_jsonl(PROCESSED / f"{name}.jsonl") for name in names}
