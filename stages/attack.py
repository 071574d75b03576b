"""Stage attack: ask the unlearned model and the oracle (and, with attack.target, the target) for
every forget fact in other ways (paraphrase, fill-in-the-blank, multiple choice, yes/no, priming,
best-of-N, jailbreak) and count the facts that come out; on the documents benchmark also prompt
with other parts of each forget document (the prefix attack)."""
import time

from unlearn_lab.data.sets import load_documents, load_sets
from unlearn_lab.models.hardware import device, resolve_eval
from unlearn_lab.environment import stamp
from unlearn_lab.io import staged_outputs, write_json, write_jsonl
from unlearn_lab.models.loading import load_model, load_tokenizer, read_meta
from unlearn_lab.robustness.attacks import build_probes, run_probes
from unlearn_lab.robustness.leaks import add_oracle_floor, headline, leak_rates, worst
from unlearn_lab.robustness.plots import attack_plot
from unlearn_lab.robustness.prefix_attack import headline as prefix_headline, prefix_probes, prefix_results, run_prefix_probes
from unlearn_lab.settings import load_settings
from unlearn_lab.stage import run_stage, stage_args


def main():
    args = stage_args(__doc__, unlearned="the unlearned model folder", target="the target model folder",
                      oracle="the oracle model folder", data="folder of the processed sets",
                      rows="every prompt and answer (JSON lines)", metrics="metrics (JSON)", plot="plot (PNG)")
    settings = load_settings()
    cfg = settings.attack
    sets = load_sets(args.data, ("forget", "retain", "holdout", "world"))
    pool = [r for records in sets.values() for r in records]
    tok = load_tokenizer(args.unlearned)
    probes = build_probes(tok, sets["forget"], pool, sets["retain"], cfg, settings.seed)
    ev = resolve_eval(settings.eval)
    documents = load_documents(args.data).get("forget", [])
    prefixes = prefix_probes(tok, documents, ev.prefix_tokens, ev.continuation_tokens)
    folders = {"target": args.target} if cfg.target else {}
    folders["unlearned"] = args.unlearned
    oracle_meta = read_meta(args.oracle)
    oracle_reason = "" if oracle_meta["kind"] != "none" else "no oracle: " + oracle_meta.get("reason", "none trained")
    if not oracle_reason:
        folders["oracle"] = args.oracle
    start = time.perf_counter()
    rows, prefix_rows = {}, {}
    for name, folder in folders.items():
        model = load_model(folder).to(device())
        rows[name] = run_probes(model, tok, probes, cfg, settings.eval, settings.seed, name)
        if prefixes:
            prefix_rows[name] = run_prefix_probes(model, tok, prefixes, ev.gen_batch_size, name)
        del model
    result = {"questions": len(sets["forget"]), "probes_per_model": len(probes), "settings": cfg.model_dump(),
              "attacks": leak_rates(rows)}
    if oracle_reason:
        result["oracle_reason"] = oracle_reason
    else:
        add_oracle_floor(result["attacks"], rows, settings.seed)
    result["worst_attack"] = worst(result, "leak_rate")
    result["worst_attack_over_oracle"] = worst(result, "leak_over_oracle")
    if prefixes:
        result["prefix_attack"] = prefix_results(prefix_rows, ev.bootstrap, settings.seed)
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["headline"] = {**headline(result), **prefix_headline(result)}
    with staged_outputs(files=[args.rows, args.metrics, args.plot]) as out:
        write_jsonl(out[args.rows], [row for name in folders for row in rows[name] + prefix_rows.get(name, [])])
        write_json(out[args.metrics], stamp(result))
        attack_plot(result, out[args.plot])
    for attack, block in result["attacks"].items():
        parts = ", ".join(f"{m} {block[m]['leak_rate']:.2f}" for m in ("target", "oracle", "unlearned") if m in block)
        over = block.get("leak_over_oracle")
        print(f"{attack}: leak rate {parts}" + (f"; over the oracle {over:+.2f}" if over is not None else ""))
    for variant, block in result.get("prefix_attack", {}).items():
        parts = ", ".join(f"{m} {block[m]['verbmem']:.3f}" for m in ("target", "oracle", "unlearned") if m in block)
        print(f"prefix attack ({variant} prefix): verbmem {parts}")
    print("headline", result["headline"])


if __name__ == "__main__":
    run_stage(main)
