"""Stage prepare_model: resolve model.source into models/base/ (safetensors + tokenizer)."""
from unlearn_lab.cli import run_stage
from unlearn_lab.io import atomic_dir
from unlearn_lab.modeling import prepare_base
from unlearn_lab.params import load_params, number
from unlearn_lab.validation import validate_params


def main():
    params = load_params()
    validate_params(params)
    with atomic_dir("models/base") as tmp:
        meta = prepare_base(params["model"], tmp, number(params, "seed", int))
    print(f"models/base: {meta['source']} ({meta['parameters'] / 1e6:.1f}M parameters)")


if __name__ == "__main__":
    run_stage(main)
