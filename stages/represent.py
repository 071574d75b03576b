"""Stage represent: per-layer drift of the unlearned model's hidden states and linear probes."""
from pathlib import Path

from unlearn_lab.cli import load_sets, run_stage
from unlearn_lab.io import write_json, write_text_atomic
from unlearn_lab.modeling import load_model, load_tokenizer, read_meta
from unlearn_lab.params import load_params, number
from unlearn_lab.representation import analyse, layer_table, represent_model, scalar_metrics
from unlearn_lab.robustness_plots import represent_plot


def main():
    params = load_params()
    cfg = params["represent"]
    sets = load_sets(("forget", "retain"))
    batch = number(params, "represent.batch_size", int, 1)
    names = ["unlearned", "target"] + (["oracle"] if read_meta("models/oracle")["kind"] != "none" else [])
    tok = load_tokenizer("models/unlearned")
    states, head = {}, None
    for name in names:
        model = load_model(f"models/{name}")
        if head is None:
            head = model.get_output_embeddings().weight.detach().float().numpy()
        states[name] = represent_model(model, tok, sets["forget"], sets["retain"], batch, name)
        del model
    result = analyse(states, head, number(params, "seed", int), float(cfg.get("probe_c", 1.0)))
    table = layer_table(result)
    write_text_atomic("plots/represent_layers.csv", table.to_csv(index=False, float_format="%.6g"))
    write_json("metrics/represent.json", scalar_metrics(result))
    represent_plot(table.to_dict(orient="list"), Path("plots/represent.png"))
    print({k: v for k, v in scalar_metrics(result).items() if k.startswith("probe_")})


if __name__ == "__main__":
    run_stage(main)
