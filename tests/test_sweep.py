"""The Ray sweep: a local 2-CPU cluster runs tiny-random trials as `dvc exp run` in workspaces of
their own; results come back to the driver's repository, failures are retried once and listed,
and a second sweep skips what finished."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import copy_pipeline
from .test_pipeline_e2e import BIN, ROOT, run

ray = pytest.importorskip("ray", reason="the cluster extra (pip install -e '.[cluster]') is not installed")
from unlearn_lab.studies.sweep import grid, sweep, trial_key  # noqa: E402


def test_grid_is_the_product_of_every_axis():
    trials = grid(["ga", "npo"], ["null", "1e-4"], [], ["1"], ["methods.npo.beta=0.1,0.2"])
    assert len(trials) == 2 * 2 * 1 * 2
    assert trials[0] == {"method": "ga", "lr": "null", "seed": "1", "methods.npo.beta": "0.1"}
    assert trials[-1] == {"method": "npo", "lr": "1e-4", "seed": "1", "methods.npo.beta": "0.2"}
    assert grid() == [{}]
    with pytest.raises(SystemExit, match="expected key=v1,v2"):
        grid(sets=["lr"])
    assert trial_key({"lr": "1"}, "abc") == trial_key({"lr": "1"}, "abc") != trial_key({"lr": "2"}, "abc")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def driver(tmp_path_factory, cluster, tiny_pipeline):
    """A tiny-random project, reproduced and committed, as a user's driver repository (a copy of
    the shared reproduced pipeline)."""
    repo = copy_pipeline(tiny_pipeline[0], tmp_path_factory.mktemp("sweep") / "repo")
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + "\n.sweep/\n")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "reproduced"], repo)
    return repo


TRIALS = [{"method": m, "unlearn.epochs": "1"} for m in ("ga", "gd", "npo")]


def test_three_trials_come_back_and_compare_lists_them(driver):
    lines = []
    result = sweep(TRIALS, driver, log=lines.append)
    assert [r["set"]["method"] for r in sorted(result["finished"], key=lambda r: r["set"]["method"])] == \
        ["ga", "gd", "npo"], lines
    assert not result["failed"] and not result["skipped"]
    # every trial had a workspace of its own, and a line when queued and when done
    assert len({r["workspace"] for r in result["finished"]}) == 3
    assert sum(line.startswith("[queued]") for line in lines) == 3 and sum(line.startswith("[done]") for line in lines) == 3
    run([str(BIN / "python"), str(ROOT / "scripts" / "compare_experiments.py")], driver)
    with open(driver / "metrics" / "comparison.csv", newline="") as fh:
        rows = {row["experiment"]: row for row in csv.DictReader(fh)}
    # the three trials, beside the committed run of the workspace; the npo trial repeats that run
    # (npo, 1 epoch, same seeds and results), so it is that one row, not a second seed
    (committed,) = [name for name in rows if not name.startswith("sweep-")]
    assert rows[committed]["method"] == "npo" and rows[committed]["epochs"] == "1"
    for trial in result["finished"]:
        row = rows[trial["name"] if trial["set"]["method"] != "npo" else committed]
        assert row["method"] == trial["set"]["method"] and row["epochs"] == "1"
    assert len(rows) == 3

    # a second sweep with the same grid does nothing but say so
    again = []
    second = sweep(TRIALS, driver, log=again.append)
    assert not second["finished"] and len(second["skipped"]) == 3
    assert sum(line.startswith("[skip]") for line in again) == 3


def test_a_failing_trial_is_retried_once_then_listed(driver):
    lines = []
    command = [sys.executable, "-c", "import sys; sys.exit('the trial broke')"]
    result = sweep([{"method": "ga", "seed": "7"}], driver, command=command, log=lines.append)
    assert not result["finished"] and len(result["failed"]) == 1
    failure = result["failed"][0]
    assert failure["attempts"] == 2 and "the trial broke" in failure["error"]
    assert sum(line.startswith("[retry]") for line in lines) == 1
    assert any(line.startswith("  failed: method=ga seed=7") for line in lines)
    assert not json.loads((driver / ".sweep" / "finished.json").read_text()).get(failure["key"])


def test_without_ray_the_command_line_says_how_to_install(tmp_path):
    code = "import sys; sys.modules['ray'] = None; from unlearn_lab.studies.sweep import main; sys.exit(main([]))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2 and "pip install -e '.[cluster]'" in proc.stderr
