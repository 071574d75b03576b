"""Stage represent: per-layer drift of the unlearned model's hidden states and linear probes."""
from unlearn_lab.cli import load_sets, run_stage
from unlearn_lab.hardware import device
from unlearn_lab.io import staged_outputs, write_json, write_text_atomic
from unlearn_lab.modeling import load_model, load_tokenizer, read_meta
from unlearn_lab.params import load_params, number
from unlearn_lab.representation import analyse, layer_table, represent_model, scalar_metrics
from unlearn_lab.robustness_plots import represent_plot
from unlearn_lab.validation import validate_params

TABLE, METRICS, PLOT = "plots/represent_layers.csv", "metrics/represent.json", "plots/represent.png"


def main():
    params = load_params()
    validate_params(params)
    cfg = params["represent"]
    sets = load_sets(("forget", "retain", "holdout"))
    # Wrong facts for the probe's candidates come from every fact of the same field.
    pool = sets["forget"] + sets["retain"] + sets["holdout"]
    batch = number(params, "represent.batch_size", int, 1)
    names = ["unlearned", "target"] + (["oracle"] if read_meta("models/oracle")["kind"] != "none" else [])
    tok = load_tokenizer("models/unlearned")
    states, head = {}, None
    for name in names:
        model = load_model(f"models/{name}").to(device())
        if head is None:
            head = model.get_output_embeddings().weight.detach().float().cpu().numpy()
        states[name] = represent_model(model, tok, sets["forget"], sets["retain"], pool, batch, name,
                                       number(params, "represent.candidates", int, 1))
        del model
    result = analyse(states, head, number(params, "seed", int), float(cfg.get("probe_c", 1.0)))
    table = layer_table(result)
    with staged_outputs(files=[TABLE, METRICS, PLOT]) as out:
        write_text_atomic(out[TABLE], table.to_csv(index=False, float_format="%.6g"))
        write_json(out[METRICS], scalar_metrics(result))
        represent_plot(table.to_dict(orient="list"), out[PLOT])
    print({k: v for k, v in scalar_metrics(result).items() if k.startswith(("probe_", "lens_"))})


if __name__ == "__main__":
    run_stage(main)
