"""Stage quantize: unlearned and target models at low bit widths, forget and retain scores again."""
from pathlib import Path

from unlearn_lab.cli import load_sets, run_stage
from unlearn_lab.hardware import device
from unlearn_lab.io import read_jsonl, staged_outputs, write_json, write_jsonl
from unlearn_lab.modeling import load_model, load_tokenizer, read_meta
from unlearn_lab.params import load_params, number
from unlearn_lab.quantization import quantize_variants
from unlearn_lab.robustness import subset
from unlearn_lab.robustness_plots import quantize_plot
from unlearn_lab.validation import validate_params

ROWS, METRICS, PLOT = "eval/quantize.jsonl", "metrics/quantize.json", "plots/quantize.png"


def main():
    params = load_params()
    validate_params(params)
    sets = load_sets(("forget", "retain"))
    sets["retain"] = subset(sets["retain"], number(params, "quantize.retain_size", int, 0))
    rows = {m: read_jsonl(f"eval/{m}.jsonl") for m in ("target", "unlearned")}
    tok = load_tokenizer("models/unlearned")

    def loader(name):
        return load_model(f"models/{name}")

    result, variant_rows = quantize_variants(loader, tok, sets, rows, params["quantize"], params["eval"], device())
    result["target_kind"] = read_meta("models/target")["kind"]
    with staged_outputs(files=[ROWS, METRICS, PLOT]) as out:
        write_jsonl(out[ROWS], variant_rows)
        write_json(out[METRICS], result)
        quantize_plot(result, out[PLOT])
    for scheme in result["schemes"]:
        r = result[scheme]
        print(f"{scheme}: forget ROUGE-L {r['forget_rouge_l_recall']:.3f}, retain {r['retain_rouge_l_recall']:.3f}, "
              f"recovered {r.get('recovered', float('nan')):.3f}")
    if "bnb_reason" in result:
        print(f"bitsandbytes skipped: {result['bnb_reason']}")


if __name__ == "__main__":
    run_stage(main)
