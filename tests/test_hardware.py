"""Machine-dependent settings: what "auto" becomes on a CPU (what runs always used) and on a
CUDA GPU (faked here), and the errors for bad values."""
import pytest
import torch
from transformers import TrainingArguments

from unlearn_lab.models import hardware
from unlearn_lab.errors import UserError
from unlearn_lab.settings import Eval, Hardware, Unlearn, parse_settings
from unlearn_lab.training.finetune import training_args


@pytest.fixture()
def fake_cuda(monkeypatch):
    """A CUDA GPU as far as hardware.py can tell; `bf16` says whether it has bf16."""
    def install(bf16: bool):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    return install


@pytest.mark.parametrize("native_bf16", [True, False])
def test_auto_on_cpu_is_what_cpu_runs_always_used(monkeypatch, tmp_path, native_bf16):
    """Whatever the CPU's flags: fp32 and the rest as before, so every CPU gives the same numbers."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware, "cpu_bf16", lambda: native_bf16)
    hw = hardware._resolve(Hardware())
    assert (hw.precision, hw.fuse_views, hw.group_by_length, hw.torch_compile) == ("fp32", False, False, False)
    assert hw.attn_implementation == "auto"
    # The Trainer's own default optimizer on this torch, i.e. what training_args gave before.
    plain = TrainingArguments(output_dir=str(tmp_path), use_cpu=True)
    args = training_args(Unlearn(), tmp_path, 0, 1e-3, hardware._resolve(Hardware(precision="auto", optim="auto")))
    assert args.optim == plain.optim
    assert (args.bf16, args.fp16, args.use_cpu, args.torch_compile) == (False, False, True, False)
    assert args.train_sampling_strategy == plain.train_sampling_strategy


def test_auto_on_an_old_torch_cpu_is_plain_adamw(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch, "__version__", "2.4.1+cpu")
    assert hardware.resolve(Hardware()).optim == "adamw_torch"


def test_auto_on_a_bf16_gpu(fake_cuda):
    fake_cuda(bf16=True)
    hw = hardware.resolve(Hardware(precision="auto", optim="auto", fuse_views="auto"))
    assert (hw.precision, hw.optim, hw.fuse_views) == ("bf16", "adamw_torch_fused", True)
    kwargs = hardware.trainer_kwargs(hardware.resolve(Hardware()))
    assert (kwargs["bf16"], kwargs["fp16"], kwargs["use_cpu"], kwargs["optim"]) == (True, False, False, "adamw_torch_fused")
    assert "train_sampling_strategy" not in kwargs


def test_auto_on_a_gpu_without_bf16_takes_fp16(fake_cuda):
    fake_cuda(bf16=False)
    kwargs = hardware.trainer_kwargs(hardware.resolve(Hardware()))
    assert (kwargs["bf16"], kwargs["fp16"]) == (False, True)


def test_explicit_values_win_over_auto(fake_cuda):
    fake_cuda(bf16=True)
    hw = hardware.resolve(Hardware(precision="fp32", optim="adamw_torch", fuse_views=False,
                                   group_by_length=True, torch_compile=True, attn_implementation="eager"))
    assert (hw.precision, hw.optim, hw.fuse_views, hw.group_by_length, hw.torch_compile, hw.attn_implementation) == \
        ("fp32", "adamw_torch", False, True, True, "eager")
    assert hardware.trainer_kwargs(hardware.resolve(Hardware(group_by_length=True)))["train_sampling_strategy"] \
        == "group_by_length"


def test_bad_values_are_user_errors(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="hardware.precision: must be one of auto, bf16, fp16, fp32, got 'half'"):
        parse_settings({"hardware": {"precision": "half"}})
    with pytest.raises(UserError, match="fp16 needs a CUDA GPU"):
        hardware.resolve(Hardware(precision="fp16"))
    with pytest.raises(UserError, match="hardware.torch_compile: must be true or false .* or auto, got 'yes'"):
        parse_settings({"hardware": {"torch_compile": "yes"}})
    with pytest.raises(UserError, match="eval.gen_batch_size: must be auto or an integer, got 'big'"):
        parse_settings({"eval": {"gen_batch_size": "big"}})
    with pytest.raises(UserError, match="eval.batch_size: must be auto or an integer from 1 to 4096, got 0"):
        parse_settings({"eval": {"batch_size": 0}})


def test_eval_batch_sizes(monkeypatch, fake_cuda):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = hardware.resolve_eval(Eval(batch_size="auto", gen_batch_size="auto"))
    assert (cfg.batch_size, cfg.gen_batch_size) == (8, 16)
    assert hardware.resolve_eval(Eval(gen_batch_size=5)).gen_batch_size == 5
    assert hardware.resolve_eval(Eval()).gen_batch_size == 16
    hardware.resolve_eval.cache_clear()
    fake_cuda(bf16=True)
    cfg = hardware.resolve_eval(Eval(batch_size="auto", gen_batch_size="auto"))
    assert (cfg.batch_size, cfg.gen_batch_size) == (32, 64)


def test_only_rank_zero_writes(monkeypatch):
    """The rank is accelerate's (PartialState: what `accelerate launch` and torchrun set up)."""
    state = hardware.process_state()
    assert state.num_processes == 1
    assert hardware.is_main_process()
    monkeypatch.setitem(state.__dict__, "process_index", 0)
    assert hardware.is_main_process()
    monkeypatch.setitem(state.__dict__, "process_index", 3)  # rank 3 of a launch
    assert not hardware.is_main_process()
    assert hardware.any_process(True) and not hardware.any_process(False)  # not distributed: the flag itself


def load_bench():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "throughput.py"
    spec = importlib.util.spec_from_file_location("bench_throughput", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_flops_and_mfu_arithmetic():
    bench = load_bench()
    # 1M parameters, 1000 trained tokens (6 FLOPs each per parameter) and 500 reference tokens (2):
    # 6e9 + 1e9 = 7e9 FLOPs; in 10 ms that is 7e11 FLOP/s, 7e11 / 989e12 of an H100.
    assert bench.training_flops(1_000_000, 1000, 500) == 7e9
    assert bench.inference_flops(1_000_000, 1000) == 2e9
    assert bench.mfu(7e9, 0.01, 989.0) == pytest.approx(7.0779e-4, rel=1e-4)
    assert bench.peak_tflops_of("NVIDIA H100 80GB HBM3") == 989.0
    assert bench.peak_tflops_of("NVIDIA H100 PCIe") == 756.0
    assert bench.peak_tflops_of("NVIDIA A100-SXM4-80GB") == 312.0
    assert bench.peak_tflops_of("AMD EPYC") is None


def test_bench_architectures_have_the_published_sizes():
    bench = load_bench()
    with torch.device("meta"):
        smol = bench.build_model("smollm2-135m", small=False)
        qwen = bench.build_model("qwen2.5-1.5b", small=False)
    # SmolLM2-135M has 134.5M parameters, Qwen2.5-1.5B 1.54B (tied embeddings counted once).
    assert bench.count_params(smol) == pytest.approx(134.5e6, rel=0.005)
    assert bench.count_params(qwen) == pytest.approx(1.544e9, rel=0.005)


def test_machine_yaml_records_what_auto_means_and_stages_refuse_another(monkeypatch, tmp_path, fake_cuda):
    """machine.yaml is this machine's meaning of every auto; where auto means something else (a
    GPU here, faked) the check names what differs, in one line."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = tmp_path / "machine.yaml"
    path.write_text(hardware.render_machine(hardware.auto_meanings()))
    from ruamel.yaml import YAML

    recorded = YAML(typ="safe").load(path.read_text())
    assert recorded == {"device": "cpu", "precision": "fp32", "optim": hardware._resolve(Hardware()).optim,
                        "torch_compile": False, "group_by_length": False, "fuse_views": False,
                        "eval_batch_size": 8, "eval_gen_batch_size": 16}
    assert tuple(recorded) == hardware.MACHINE_KEYS
    hardware.check_machine(path)
    hardware.check_machine(tmp_path / "absent.yaml")  # outside the repository: nothing to check
    fake_cuda(bf16=True)
    with pytest.raises(UserError, match=r"machine.yaml: .*device cpu -> cuda.*precision fp32 -> bf16.*make env") as err:
        hardware.check_machine(path)
    assert "\n" not in str(err.value)


def test_resolving_records_the_choices_for_metrics_and_model_folders(monkeypatch):
    from unlearn_lab import environment

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(environment, "RESOLVED", {})
    assert "machine" not in environment.stamp({"x": 1})
    hardware.resolve.__wrapped__(Hardware(precision="fp32", optim="adamw_torch"))
    hardware.resolve_eval.__wrapped__(Eval(batch_size=3))
    machine = environment.stamp({"x": 1})["machine"]
    assert machine == {"device": "cpu", "precision": "fp32", "optim": "adamw_torch", "torch_compile": False,
                       "group_by_length": False, "fuse_views": False, "eval_batch_size": 3,
                       "eval_gen_batch_size": 16}


def test_a_stage_that_resolves_auto_refuses_a_stale_machine_yaml(tmp_path):
    """Through run_stage, as a stage runs: exit 2, one line, nothing written."""
    import subprocess
    import sys

    (tmp_path / "machine.yaml").write_text(hardware.render_machine({**hardware.auto_meanings(), "precision": "bf16"}))
    script = tmp_path / "stage.py"
    script.write_text("from pathlib import Path\nfrom unlearn_lab.models import hardware\nfrom unlearn_lab.stage import run_stage\n"
                      "run_stage(lambda: Path('out.txt').write_text('x'))\n")
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "precision bf16 -> fp32" in proc.stderr and not (tmp_path / "out.txt").exists()


def test_the_summary_names_the_machine_choices_of_its_stages():
    from unlearn_lab.evaluation.report import run_machine

    fine = {"machine": {"device": "cpu", "precision": "fp32"}}
    evaluated = {"machine": {"device": "cpu", "eval_batch_size": 8, "attention": "sdpa"}}
    assert run_machine({"a.json": fine, "b.json": evaluated, "c.json": {}}) == {
        "machine": {"attention": "sdpa", "device": "cpu", "eval_batch_size": 8, "precision": "fp32"}}
    gpu = {"machine": {"device": "cuda", "precision": "bf16"}}
    assert run_machine({"a.json": fine, "g.json": gpu}) == {"machine": {"a.json": fine["machine"], "g.json": gpu["machine"]}}
    assert run_machine({"a.json": {}}) == {}


def test_make_env_writes_machine_yaml_and_check_names_a_stale_one(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "machine.yaml"
    cmd = [sys.executable, "-m", "unlearn_lab.models.hardware", "--file", str(path)]
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert subprocess.run([*cmd, "--check"], capture_output=True).returncode == 0
    path.write_text(path.read_text().replace("precision: fp32", "precision: bf16"))
    proc = subprocess.run([*cmd, "--check"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "precision bf16 -> fp32" in proc.stderr
