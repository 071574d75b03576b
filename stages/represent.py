"""Stage represent: per-layer drift of the unlearned model's hidden states and linear probes."""
from unlearn_lab.data.sets import load_sets, sample
from unlearn_lab.models.hardware import device
from unlearn_lab.environment import stamp
from unlearn_lab.io import staged_outputs, write_json, write_text_atomic
from unlearn_lab.models.loading import load_model, load_tokenizer, read_meta
from unlearn_lab.robustness.plots import represent_plot
from unlearn_lab.robustness.representation import analyse, headline, layer_table, represent_model, scalar_metrics
from unlearn_lab.settings import load_settings
from unlearn_lab.stage import run_stage, stage_args


def main():
    args = stage_args(__doc__, unlearned="the unlearned model folder", target="the target model folder",
                      oracle="the oracle model folder", data="folder of the processed sets",
                      table="per-layer table (CSV)", metrics="metrics (JSON)", plot="plot (PNG)")
    settings = load_settings()
    cfg = settings.represent
    sets = load_sets(args.data, ("forget", "retain", "holdout"))
    # Wrong facts for the probe's candidates come from every fact of the same field.
    pool = sets["forget"] + sets["retain"] + sets["holdout"]
    sets["retain"] = sample(sets["retain"], cfg.retain_size)
    folders = {"unlearned": args.unlearned, "target": args.target}
    if read_meta(args.oracle)["kind"] != "none":
        folders["oracle"] = args.oracle
    tok = load_tokenizer(args.unlearned)
    states, head = {}, None
    for name, folder in folders.items():
        model = load_model(folder).to(device())
        if head is None:
            head = model.get_output_embeddings().weight.detach().float().cpu().numpy()
        states[name] = represent_model(model, tok, sets["forget"], sets["retain"], pool, cfg.batch_size, name,
                                       cfg.candidates, cfg.lens_every)
        del model
    result = analyse(states, head, settings.seed, cfg.probe_c)
    table = layer_table(result)
    metrics = scalar_metrics(result)
    metrics["headline"] = headline(metrics)
    with staged_outputs(files=[args.table, args.metrics, args.plot]) as out:
        write_text_atomic(out[args.table], table.to_csv(index=False, float_format="%.6g"))
        write_json(out[args.metrics], stamp(metrics))
        represent_plot(table.to_dict(orient="list"), out[args.plot])
    print({k: v for k, v in metrics.items() if k.startswith(("probe_", "lens_"))})


if __name__ == "__main__":
    run_stage(main)
