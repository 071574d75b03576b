"""Study scripts run the committed HEAD in a scratch clone brought up to date, collect only the runs
asked for, write the commit into their CSV, and the study tables of docs/studies.md are that CSV."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from unlearn_lab.studies.documents import readme_block as documents_block
from unlearn_lab.studies.documents import study_csv, study_rows
from unlearn_lab.errors import UserError
from unlearn_lab.studies.front_page import headline_block
from unlearn_lab.studies.readme_blocks import read_block, read_rows, write_block
from unlearn_lab.studies.scale import readme_block as scale_block
from unlearn_lab.studies.scratch import clone_at_head, require_committed, set_params

ROOT = Path(__file__).resolve().parents[1]
# the page whose tables scripts/documents_study.py and scripts/scale.py write (--readme-path)
STUDIES_PAGE = ROOT / "docs" / "studies.md"
GIT = ["git", "-c", "user.email=t@localhost", "-c", "user.name=t"]


def sh(*args, cwd):
    return subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "code.py").write_text("A = 1\n")
    (root / "params.yaml").write_text("# the method\nmethod: npo\ndata:\n  benchmark: synthetic  # kept\n")
    (root / ".gitignore").write_text("/out/\n")
    sh("init", "-q", cwd=root)
    sh("add", "-A", cwd=root)
    sh("commit", "-qm", "one", cwd=root)
    return root


def test_the_scratch_clone_is_made_and_then_brought_to_head(repo, tmp_path):
    work = tmp_path / "scratch" / "documents"
    first = clone_at_head(repo, work)
    assert first == sh("rev-parse", "HEAD", cwd=repo) == sh("rev-parse", "HEAD", cwd=work)
    assert (work / "src" / "code.py").read_text() == "A = 1\n"
    # the clone as a previous study left it: params set, a stray file, an output DVC keeps
    (work / "params.yaml").write_text("method: gd\n")
    (work / "results").mkdir()
    (work / "results" / "stale.json").write_text("{}")
    (work / "out").mkdir()
    (work / "out" / "model.bin").write_text("weights")
    (repo / "src" / "code.py").write_text("A = 2\n")
    sh("commit", "-qam", "two", cwd=repo)
    second = clone_at_head(repo, work)
    assert second != first and second == sh("rev-parse", "HEAD", cwd=repo) == sh("rev-parse", "HEAD", cwd=work)
    assert (work / "src" / "code.py").read_text() == "A = 2\n"
    assert (work / "params.yaml").read_text().startswith("# the method\nmethod: npo")
    assert not (work / "results").exists()
    assert (work / "out" / "model.bin").read_text() == "weights"


def test_uncommitted_pipeline_changes_refuse_and_other_files_do_not(repo, tmp_path):
    (repo / "notes.txt").write_text("untracked")
    (repo / "README.md").write_text("docs")
    sh("add", "README.md", cwd=repo)
    assert require_committed(repo) == sh("rev-parse", "HEAD", cwd=repo)  # docs are not what runs
    (repo / "params.yaml").write_text("method: ga\n")
    with pytest.raises(UserError, match=r"uncommitted changes to params.yaml: the study runs the committed HEAD"):
        clone_at_head(repo, tmp_path / "work")
    assert not (tmp_path / "work").exists()
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("someone's work")
    sh("checkout", "params.yaml", cwd=repo)
    with pytest.raises(UserError, match="plain: exists and is not a git clone of"):
        clone_at_head(repo, tmp_path / "plain")
    assert (tmp_path / "plain" / "notes.txt").read_text() == "someone's work"


def test_set_params_merges_dotted_and_nested_keys_keeping_comments(repo):
    path = repo / "params.yaml"
    set_params(path, {"data.benchmark": "documents", "method": "simnpo", "unlearn": {"epochs": 3}})
    assert path.read_text() == ("# the method\nmethod: simnpo\ndata:\n  benchmark: documents  # kept\n"
                                "unlearn:\n  epochs: 3\n")


def write_results(results: Path, method: str, verbmem: float, commit: str | None):
    folder = results / method
    folder.mkdir(parents=True)
    for name, value in (("target", 0.9), ("oracle", 0.5), ("unlearned", verbmem)):
        (folder / f"{name}.json").write_text(json.dumps({"verbmem_forget": value, "model_utility": 0.4}))
    (folder / "unlearn.json").write_text(json.dumps({"method": method, "lr": 5e-4, "steps": 10, "seconds": 30.0}))
    if commit:
        (folder / "study.json").write_text(json.dumps({"commit": commit, "method": method}))


def test_only_the_methods_asked_for_are_collected_each_row_naming_the_commit(tmp_path):
    write_results(tmp_path, "npo", 0.3, "a" * 40)
    write_results(tmp_path, "gd", 0.6, "a" * 40)
    write_results(tmp_path, "ga", 0.1, "b" * 40)  # an earlier run of another commit
    rows = study_rows(tmp_path, ["npo", "gd"])
    assert [(r["model"], r["verbmem_forget"]) for r in rows] == [
        ("target", 0.9), ("oracle", 0.5), ("unlearned npo", 0.3), ("unlearned gd", 0.6)]
    assert {r["commit"] for r in rows} == {"a" * 40}
    text = study_csv(rows)
    assert text.splitlines()[0].endswith(",lr,steps,commit") and text.splitlines()[1].endswith("," + "a" * 40)
    with pytest.raises(UserError, match=r"ran on different commits \(npo at aaaaaaa, ga at bbbbbbb\)"):
        study_rows(tmp_path, ["npo", "ga"])
    with pytest.raises(UserError, match=r"no simnpo/unlearned.json \(run it without --collect-only\)"):
        study_rows(tmp_path, ["npo", "simnpo"])
    write_results(tmp_path, "rmu", 0.2, None)
    with pytest.raises(UserError, match=r"rmu/study.json: not found: these results do not say which commit"):
        study_rows(tmp_path, ["rmu"])


def test_collect_only_refuses_in_one_line_and_writes_nothing(tmp_path):
    write_results(tmp_path / "results", "npo", 0.3, None)
    readme = tmp_path / "README.md"
    readme.write_text("x\n")
    env_args = ["--results", str(tmp_path / "results"), "--csv", str(tmp_path / "d.csv"),
                "--plot", str(tmp_path / "d.png"), "--readme-path", str(readme)]
    done = subprocess.run([sys.executable, "scripts/documents_study.py", "--collect-only", "--methods", "npo",
                           *env_args], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "study.json: not found" in done.stderr
    assert not (tmp_path / "d.csv").exists() and not (tmp_path / "d.png").exists()


def test_readme_blocks_are_the_committed_csvs():
    documents = read_rows(ROOT / "metrics" / "documents.csv")
    scale = read_rows(ROOT / "metrics" / "scale.csv")
    assert all(re.fullmatch(r"[0-9a-f]{40}", str(r["commit"])) for r in documents + scale)
    assert read_block(STUDIES_PAGE, "metrics/documents.csv") == documents_block(documents)
    assert read_block(STUDIES_PAGE, "metrics/scale.csv") == scale_block(scale)


def test_the_front_page_table_is_the_committed_summary():
    summary = json.loads((ROOT / "metrics" / "summary.json").read_text())
    assert read_block(ROOT / "README.md", "metrics/summary.json") == headline_block(summary)


def test_the_front_page_table_by_hand():
    """Each cell: the value and its interval from the summary, the interval left out where it is
    the point itself, the oracle's privleak marked as the reference."""
    model = {"forget_rouge_l_recall": 0.5, "forget_rouge_l_recall_ci95": [0.25, 0.75], "forget_truth_ratio": 0.4,
             "forget_quality": 0.012345, "forget_quality_sizes": {"model": 8, "oracle": 8}, "privleak": -100.0,
             "privleak_ci95": [-100.0, -100.0], "retain_rouge_l_recall": 1.0, "model_utility": 0.6}
    summary = {"method": "ga", "lr": 1e-05, "benchmark": "synthetic", "target": model, "unlearned": model,
               "oracle": {**model, "privleak": 0.0, "privleak_ci95": None}, "robustness_score": 0.5,
               "quant_nf4_recovered": 0.1, "relearn_recovered_over_oracle": 0.2, "attack_leak_over_oracle_max": 0.3}
    lines = headline_block(summary).splitlines()
    assert lines[0].startswith("From `metrics/summary.json`: method `ga` at lr 1e-05 on the synthetic benchmark, 8 forget")
    assert lines[4] == "| forget ROUGE-L recall | 0.500 [0.250, 0.750] | 0.500 [0.250, 0.750] | 0.500 [0.250, 0.750] |"
    assert lines[6] == "| forget quality (KS p against the oracle) | 1.2e-02 | 1.2e-02 | 1.2e-02 |"
    assert lines[7] == "| privleak (0: the oracle, -100: under-unlearned) | -100.0 | 0.0 (reference) | -100.0 |"
    assert lines[-1].startswith("Robustness score 0.500: NF4 quantization recovers 0.10") and "leaks 0.30" in lines[-1]


def test_the_documents_prose_quotes_only_figures_of_its_table():
    page = STUDIES_PAGE.read_text()
    start = page.index("## Documents:")
    end = page.find("\n## ", start + 1)
    section = page[start:end if end >= 0 else len(page)]
    table = read_block(STUDIES_PAGE, "metrics/documents.csv")
    prose = section.replace(table, "")
    quoted = re.findall(r"-?\d+(?:\.\d+)? \[-?\d+(?:\.\d+)?, -?\d+(?:\.\d+)?\]", prose)
    assert quoted and all(q in table for q in quoted), [q for q in quoted if q not in table]
    # each model's figures the bullets name, checked against its own row of the CSV
    rows = {r["model"]: r for r in read_rows(ROOT / "metrics" / "documents.csv")}
    assert f"target verbmem {rows['target']['verbmem_forget']:.2f}" in prose
    assert f"knowmem {rows['target']['knowmem_forget']:.2f} against the oracle's {rows['oracle']['knowmem_forget']:.2f}" in prose
    assert f"membership AUC is {rows['oracle']['mia_documents_auc']:.3f}" in prose


def test_a_block_is_replaced_between_its_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- begin t.csv (x) -->\nold\n<!-- end t.csv -->\nb\n")
    assert write_block(readme, "t.csv", "new\n") is True
    assert readme.read_text() == "a\n<!-- begin t.csv (x) -->\nnew\n<!-- end t.csv -->\nb\n"
    assert write_block(readme, "t.csv", "new\n") is False
    with pytest.raises(UserError, match="no block"):
        write_block(readme, "other.csv", "x\n")
