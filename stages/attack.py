"""Stage attack: ask the unlearned model for every forget fact in other ways (paraphrase,
fill-in-the-blank, multiple choice, yes/no, priming, best-of-N, jailbreak) and count the facts that
come out, beside the oracle's and (with attack.target) the target's answers to the same prompts,
which stage attack_probes stored; on the documents benchmark also prompt with other parts of each
forget document (the prefix attack)."""
from unlearn_lab import timing
from unlearn_lab.environment import stamp
from unlearn_lab.io import staged_outputs, write_json, write_jsonl
from unlearn_lab.models.loading import load_tokenizer
from unlearn_lab.robustness.plots import attack_plot
from unlearn_lab.robustness.probing import attack_inputs, attack_result, probe_model, read_probed
from unlearn_lab.settings import load_settings
from unlearn_lab.stage import run_stage, stage_args


def main():
    args = stage_args(__doc__, unlearned="the unlearned model folder",
                      target_rows="the target's rows (attack_probes@target)",
                      target_report="the target's seconds, or why it was not probed (JSON)",
                      oracle_rows="the oracle's rows (attack_probes@oracle)",
                      oracle_report="the oracle's seconds, or why it was not probed (JSON)",
                      data="folder of the processed sets", rows="every prompt and answer (JSON lines)",
                      metrics="metrics (JSON)", plot="plot (PNG)")
    settings = load_settings()
    tok = load_tokenizer(args.unlearned)
    inputs = attack_inputs(tok, args.data, settings)
    target = read_probed("target", args.target_rows, args.target_report, inputs)
    oracle = read_probed("oracle", args.oracle_rows, args.oracle_report, inputs)
    runs = {"target": target} if not target.reason else {}
    runs["unlearned"] = probe_model(args.unlearned, tok, inputs, settings, "unlearned")
    if not oracle.reason:
        runs["oracle"] = oracle
    result = attack_result(runs, oracle.reason, inputs, settings)
    result["seconds_by_part"] = timing.report()  # this process: the unlearned model's probing
    with staged_outputs(files=[args.rows, args.metrics, args.plot]) as out:
        write_jsonl(out[args.rows], [row for run in runs.values() for row in run.rows + run.prefix_rows])
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
