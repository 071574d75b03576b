"""`make verify`: re-run the pipeline (or --stages) in a scratch clone of HEAD and compare every
output hash and metric with the commit (src/unlearn_lab/studies/verify.py says how). Exit 0: reproduced;
1: a mismatch beyond tolerance, or the re-run failed; 2: bad input.

    python scripts/verify.py                                  # the whole pipeline, cross-machine
    python scripts/verify.py --stages process_data random_labels --tolerance same-machine
    python scripts/verify.py --no-run --dir .scratch/verify   # compare a clone already re-run
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # this checkout's package, whatever the editable install points at

from unlearn_lab.studies.verify import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(root=ROOT))
