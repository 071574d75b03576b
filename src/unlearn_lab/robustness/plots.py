"""Figures of the robustness stages: forget scores after quantization and after relearning, and
the per-layer drift and probe accuracy of the representation analysis."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..figures import COLORS, grouped_bars, pyplot, save


def quantize_plot(result: dict, path: Path) -> None:
    """Forget and retain ROUGE-L recall of target and unlearned at full precision and after each
    quantization scheme, with the unlearned model's recovered fraction in the title of each."""
    plt = pyplot()
    schemes = [s for s in result["schemes"] if s in result]
    groups = ["full", *schemes]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, set_name in zip(axes, ("forget", "retain")):
        key = f"{set_name}_rouge_l_recall"
        series = {}
        for model in ("target", "unlearned"):
            full = result["full_precision"][model][key]
            quant = [result.get(s if model == "unlearned" else f"target_{s}", {}).get(key, np.nan) for s in schemes]
            series[model] = [full, *quant]
        grouped_bars(ax, groups, series)
        ax.set_ylim(0, 1.22)
        ax.set_title(f"{set_name} ROUGE-L recall")
        ax.grid(axis="y", alpha=0.3)
    recovered = ", ".join(f"{s}: {result[s]['recovered']:.2f}" for s in schemes if "recovered" in result[s])
    fig.suptitle("Does quantization bring the forgotten facts back?"
                 + (f"  (recovered fraction of forget ROUGE-L, {recovered})" if recovered else ""))
    fig.tight_layout()
    save(fig, path)


def relearn_plot(result: dict, path: Path) -> None:
    """Forget scores on the scored facts: target, unlearned, and unlearned after relearning; the
    oracle before and after the same attack when it was attacked too."""
    plt = pyplot()
    keys = [("forget_rouge_l_recall", "ROUGE-L recall"), ("forget_prob", "answer probability"),
            ("forget_truth_ratio", "truth-ratio score")]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    series = {"target": [result["target"][k] for k, _ in keys],
              "unlearned": [result["unlearned"][k] for k, _ in keys],
              "relearned": [result["relearned"][k] for k, _ in keys]}
    if "oracle_relearned" in result:
        series["oracle"] = [result["oracle"][k] for k, _ in keys]
        series["oracle relearned"] = [result["oracle_relearned"][k] for k, _ in keys]
    grouped_bars(ax, [label for _, label in keys], series)
    ax.set_ylim(0, 1.22)
    ax.grid(axis="y", alpha=0.3)
    rec, over = result["relearned"].get("recovered"), result["relearned"].get("recovered_over_oracle")
    ax.set_title(f"Relearning: {result['steps']} steps on {result['attack_examples']} {result['data']} facts, "
                 f"scored on {result['scored']} forget facts"
                 + (f"; recovered {rec:.2f}" if rec is not None else "")
                 + (f", over the oracle {over:.2f}" if over is not None else ""), fontsize=10)
    fig.tight_layout()
    save(fig, path)


def represent_plot(layers: dict[str, list[float]], path: Path) -> None:
    """Per layer: drift of the unlearned model from the target on forget and retain answers
    (|dh| and 1 - cosine), and, for each model, how often a logistic-regression probe and the
    logit lens pick the true forget fact among its candidates."""
    plt = pyplot()
    x = np.arange(len(layers["layer"]))
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    axes = axes.ravel()
    for set_name, style in (("forget", "-"), ("retain", "--")):
        if f"{set_name}_drift_norm" in layers:
            axes[0].plot(x, layers[f"{set_name}_drift_norm"], style, color="tab:blue", label=f"{set_name} |dh|")
            axes[1].plot(x, 1 - np.asarray(layers[f"{set_name}_cosine"]), style, color="tab:blue",
                         label=f"{set_name} 1 - cos")
    axes[0].set_title("unlearned vs target: |dh| per layer")
    axes[1].set_title("unlearned vs target: 1 - cosine per layer")
    axes[1].set_yscale("symlog", linthresh=1e-4)
    for model in ("target", "oracle", "unlearned"):
        key = f"probe_{model}_forget_accuracy"
        if key in layers:
            axes[2].plot(x, layers[key], color=COLORS[model], label=f"{model} (forget)")
    if "probe_unlearned_retain_accuracy" in layers:
        axes[2].plot(x, layers["probe_unlearned_retain_accuracy"], ":", color=COLORS["unlearned"],
                     label="unlearned (held-out retain)")
    if "probe_chance" in layers:
        axes[2].axhline(layers["probe_chance"][0], color="grey", lw=1, label="chance")
    axes[2].set_ylim(-0.02, 1.05)
    axes[2].set_title("logistic-regression probe (trained on retain facts)")
    for model in ("target", "oracle", "unlearned"):
        key = f"lens_{model}_forget_accuracy"
        if key in layers:
            read = np.isfinite(np.asarray(layers[key], dtype=float))  # the layers the lens read
            axes[3].plot(x[read], np.asarray(layers[key], dtype=float)[read], color=COLORS[model], label=model,
                         marker=".")
    if "probe_chance" in layers:
        axes[3].axhline(layers["probe_chance"][0], color="grey", lw=1, label="chance")
    axes[3].set_ylim(-0.02, 1.05)
    axes[3].set_title("logit lens: the layer ranks the true forget fact first")
    for ax in axes:
        ax.set_xlabel("layer (0: embeddings)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, path)


def attack_plot(result: dict, path: Path) -> None:
    """Leak rate per attack for each model, with its 95% Wilson interval; the oracle's bar is the
    floor a model that never saw the facts reaches."""
    plt = pyplot()
    attacks = list(result["attacks"])
    models = [m for m in ("target", "oracle", "unlearned") if any(m in result["attacks"][a] for a in attacks)]
    fig, ax = plt.subplots(figsize=(max(8, 1.5 * len(attacks)), 4.5))
    series = {m: [result["attacks"][a].get(m, {}).get("leak_rate", np.nan) for a in attacks] for m in models}
    grouped_bars(ax, [a.replace("_", " ") for a in attacks], series)
    width = 0.8 / max(1, len(models))
    for i, m in enumerate(models):
        x = np.arange(len(attacks)) + (i - (len(models) - 1) / 2) * width
        lo, hi = zip(*(result["attacks"][a].get(m, {}).get("leak_rate_ci95", [np.nan, np.nan]) for a in attacks))
        rate = np.array(series[m])
        ax.errorbar(x, rate, yerr=[rate - np.array(lo), np.array(hi) - rate], fmt="none", ecolor="black",
                    elinewidth=0.8, capsize=2)
    ax.set_ylim(0, 1.25)
    ax.set_ylabel("share of forget questions leaked")
    ax.grid(axis="y", alpha=0.3)
    head = result.get("headline", {})
    over = head.get("attack_leak_over_oracle_max")
    ax.set_title(f"Prompt attacks on {result['questions']} forget questions (bars: 95% Wilson intervals)"
                 + (f"; worst leak over the oracle {over:+.2f} ({result.get('worst_attack_over_oracle')})"
                    if over is not None else ""), fontsize=10)
    fig.tight_layout()
    save(fig, path)
