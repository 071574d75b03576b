"""Stage represent: per-layer drift of the unlearned model's hidden states and linear probes; the
target's and the oracle's parts come from represent_readouts."""
import time

from unlearn_lab import timing
from unlearn_lab.environment import stamp
from unlearn_lab.io import staged_outputs, write_json, write_text_atomic
from unlearn_lab.models.hardware import device
from unlearn_lab.models.loading import load_model, load_tokenizer
from unlearn_lab.robustness.plots import represent_plot
from unlearn_lab.robustness.readouts import read_part
from unlearn_lab.robustness.representation import (analyse, headline, layer_table, read_model, represent_facts,
                                                   scalar_metrics)
from unlearn_lab.settings import load_settings
from unlearn_lab.stage import run_stage, stage_args


def main():
    args = stage_args(__doc__, unlearned="the unlearned model folder", data="folder of the processed sets",
                      target_states="the target's pooled states (npz)", target_probes="the target's probes (JSON)",
                      oracle_states="the oracle's pooled states (npz)", oracle_probes="the oracle's probes (JSON)",
                      table="per-layer table (CSV)", metrics="metrics (JSON)", plot="plot (PNG)")
    settings = load_settings()
    cfg = settings.represent
    start = time.perf_counter()
    facts = represent_facts(args.data, cfg.retain_size)
    with timing.part("load"):
        model = load_model(args.unlearned).to(device())
    head = model.get_output_embeddings().weight.detach().float().cpu().numpy()
    states, probes = {}, {}
    states["unlearned"], probes["unlearned"] = read_model(model, load_tokenizer(args.unlearned), facts, cfg,
                                                          settings.seed, "unlearned")
    del model
    seconds = {"unlearned": round(time.perf_counter() - start, 1)}
    for name, states_path, probes_path in (("target", args.target_states, args.target_probes),
                                           ("oracle", args.oracle_states, args.oracle_probes)):
        part = read_part(states_path, probes_path)
        if part is not None:  # None: no such model (the world benchmark has no oracle)
            states[name], probes[name], seconds[name] = part
    with timing.part("drift"):
        result = analyse(states, probes, head)
    table = layer_table(result)
    metrics = scalar_metrics(result)
    metrics["headline"] = headline(metrics)
    metrics["seconds"] = seconds
    metrics["seconds_by_part"] = timing.report()
    with staged_outputs(files=[args.table, args.metrics, args.plot]) as out:
        write_text_atomic(out[args.table], table.to_csv(index=False, float_format="%.6g"))
        write_json(out[args.metrics], stamp(metrics))
        represent_plot(table.to_dict(orient="list"), out[args.plot])
    print({k: v for k, v in metrics.items() if k.startswith(("probe_", "lens_"))})


if __name__ == "__main__":
    run_stage(main)
