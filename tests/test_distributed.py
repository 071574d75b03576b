"""Several processes: the stages launched as docs/gpu.md launches them on several GPUs
(`accelerate launch --config_file accelerate/default_config.yaml ...`), here as two CPU
processes talking over gloo, against the one-process run with the same global batch."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from .test_pipeline_e2e import BIN, ROOT, load_stages, run, setup_repo, update_params

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch without gloo cannot run several CPU processes")

# One process with batch B against two with B / 2 each: the same global batch. The sizes give
# full steps only: fine-tuning 17 (68 examples / 4), unlearning 2 per epoch (8 forget / 4).
ONE = {"finetune": {"batch_size": 4}, "unlearn": {"batch_size": 4, "epoch_eval": False}}
# docs/gpu.md's launch; the config's bf16 is for GPUs, a CPU run keeps the project's fp32.
LAUNCH = ["launch", "--config_file", "accelerate/default_config.yaml", "--num_processes", "2",
          "--mixed_precision", "no"]


def launch(repo, args, **env):
    return run([str(BIN / "accelerate"), *LAUNCH, *args], repo, OMP_NUM_THREADS="1", **env)


def stage_args(repo, stage: str, out: str) -> list[str]:
    """The stage's own command from dvc.yaml, its outputs moved under `out/`."""
    stages = load_stages(repo / "dvc.yaml")
    cmd = stages[stage]["cmd"].split()
    assert cmd[0] == "python"
    outputs = {o if isinstance(o, str) else next(iter(o)) for key in ("outs", "metrics")
               for o in stages[stage].get(key) or []}
    return [f"{out}/{Path(a).name}" if a in outputs else a for a in cmd[1:]]


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = setup_repo(tmp_path_factory.mktemp("distributed") / "repo", ONE)
    shutil.copytree(ROOT / "accelerate", repo / "accelerate")
    shutil.copy(ROOT / "tests" / "distributed_probe.py", repo / "distributed_probe.py")
    run([str(BIN / "dvc"), "repro", "unlearn"], repo)
    update_params(repo, {section: {"batch_size": ONE[section]["batch_size"] // 2} for section in ONE})
    launch(repo, stage_args(repo, "finetune@target", "two"))
    launch(repo, stage_args(repo, "unlearn", "two"))
    launch(repo, ["distributed_probe.py", "probe"], PYTHONPATH=str(repo / "src"))
    return repo


def curve(folder: Path) -> np.ndarray:
    rows = (folder / "plots/metrics/train/loss.tsv").read_text().splitlines()[1:]
    return np.array([float(r.split("\t")[1]) for r in rows])


def adapter(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "adapter_model.safetensors")


def lora_update_difference(a: dict, b: dict) -> float:
    """max over adapted layers of |B_a A_a - B_b A_b| / |B_b A_b|: how far apart the two weight
    updates are (A and B alone are defined only up to a rescaling)."""
    assert a.keys() == b.keys()
    worst = 0.0
    for key in (k for k in a if "lora_A" in k):
        up = key.replace("lora_A", "lora_B")
        delta_a, delta_b = a[up] @ a[key], b[up] @ b[key]
        worst = max(worst, ((delta_a - delta_b).norm() / delta_b.norm()).item())
    return worst


def test_two_process_finetune_matches_one_process(repo):
    """The Trainer scales the loss by the tokens of the whole global batch, so two ranks of 2
    take the one-process step of 4: loss curves and weight updates agree to float error
    (measured: 1e-7 relative)."""
    one, two = json.loads((repo / "metrics/finetune_target.json").read_text()), \
        json.loads((repo / "two/finetune_target.json").read_text())
    assert two["processes"] == 2 and "processes" not in one
    assert one["steps"] == two["steps"] == 17 and one["examples"] == two["examples"] == 68
    np.testing.assert_allclose(curve(repo / "two/finetune_target"), curve(repo / "logs/finetune_target"), rtol=1e-4)
    assert lora_update_difference(adapter(repo / "two/target"), adapter(repo / "models/target")) < 1e-4


def test_two_process_unlearning_matches_one_process(repo):
    """Each unlearning loss is a mean over the tokens or examples of the whole global batch
    (global_mean), as the fine-tune's is: two ranks of 2 take the one-process step of 4, so the
    curves and the weight updates agree to float error (measured on npo, the default: curve 1.5e-7
    relative, update 4.4e-7; 0.15 while each rank averaged over its own share)."""
    one, two = json.loads((repo / "metrics/unlearn.json").read_text()), json.loads((repo / "two/unlearn.json").read_text())
    assert two["processes"] == 2 and one["steps"] == two["steps"] == 2 and not two["stopped_early"]
    np.testing.assert_allclose(curve(repo / "two/unlearn"), curve(repo / "logs/unlearn"), rtol=1e-5)
    assert lora_update_difference(adapter(repo / "two/unlearned"), adapter(repo / "models/unlearned")) < 1e-4


def test_only_the_main_process_wrote_outputs(repo):
    """Rank 1's staged outputs are discarded: the launch left the declared outputs, once, and
    nothing else (no second copy, no temporary folder)."""
    written = sorted(p.name for p in (repo / "two").iterdir())
    assert written == ["finetune_target", "finetune_target.json", "target", "unlearn", "unlearn.json",
                       "unlearn_epochs", "unlearned"]
    assert not [p for p in repo.rglob("*") if ".tmp" in p.name or p.name.endswith(".old")]


@pytest.fixture(scope="module")
def ranks(repo):
    return [json.loads((repo / f"probe/rank{r}.json").read_text()) for r in (0, 1)]


def test_ranks_draw_different_pairs_that_cover_the_epoch(repo, ranks):
    """open-unlearning #139: every rank drew the same retain samples. Here each rank takes its own
    share of the forget set, and its retain partners are the one-process pairing's."""
    from unlearn_lab.data.sets import load_sets
    from unlearn_lab.training.unlearning import PairedDataset

    sets = load_sets(repo / "data/processed", ("forget", "retain"))
    assert [r["processes"] for r in ranks] == [2, 2]
    forget_ids = [r["id"] for r in sets["forget"]]
    for epoch in (0, 1):
        pairing = PairedDataset([0] * len(sets["forget"]), [0] * len(sets["retain"]), seed=0)
        pairing.set_epoch(epoch)
        expected = {(forget_ids[i], sets["retain"][int(pairing.pairing[i])]["id"]) for i in range(len(forget_ids))}
        per_rank = [{tuple(pair) for batch in r["batches"][2 * epoch: 2 * epoch + 2] for pair in batch} for r in ranks]
        assert all(len(drawn) == 4 for drawn in per_rank)
        assert not per_rank[0] & per_rank[1]
        assert {f for f, _ in per_rank[0]}.isdisjoint({f for f, _ in per_rank[1]})
        assert per_rank[0] | per_rank[1] == expected
    assert ranks[0]["weights"] == ranks[1]["weights"]  # DDP kept the replicas equal


def test_divergence_guard_stops_every_rank_together(ranks):
    first, second = (r["guard"] for r in ranks)
    assert second["reason"] == "non-finite loss at step 1"
    assert first["reason"] == "another process of the distributed run diverged at step 1"
    assert first["step"] == second["step"] == 1 and first["global_step"] == second["global_step"] == 2
    # the last weights whose loss was fine are those before step 0's update (the step 1 loss
    # was computed after it), on both ranks
    assert first["restored_to_start"] and second["restored_to_start"]
