"""Comparison rows from `dvc exp show --json` output, the Pareto front and the best-forgetter pick."""
import csv
import json

import pytest
from scipy import stats

from unlearn_lab.studies.comparison import COLUMNS, best_forgetter, experiment_rows, pareto_front, plot_pareto, reference_points, write_csv


def exp_data(method, lr, forget, fq, mu, seconds=10.0, unlearn_seed=0):
    return {
        "params": {"params.yaml": {"data": {"method": method, "lr": None, "seed": 42,
                                            "unlearn": {"epochs": 5, "seed": unlearn_seed}}}},
        "metrics": {
            "metrics/unlearn.json": {"data": {"method": method, "lr": lr, "epochs": 5, "seconds": seconds,
                                              "knobs": {"beta": 0.1}, "stop_reason": ""}},
            "metrics/unlearned.json": {"data": {
                "forget": {"rouge_l_recall": forget, "truth_ratio": 0.4}, "retain": {"rouge_l_recall": 0.9},
                "world": {"rouge_l_recall": 0.45}, "forget_quality": fq, "model_utility": mu}},
            "metrics/target.json": {"data": {"model_utility": 0.7, "forget_quality": 0.003,
                                             "forget": {"rouge_l_recall": 0.94}}},
            # each robustness stage's headline block; this run wrote no logit-lens figure
            "metrics/quantize.json": {"data": {"headline": {"quant_int4_recovered": -0.5}}},
            "metrics/relearn.json": {"data": {"headline": {"relearn_recovered": forget / 2}}},
            "metrics/represent.json": {"data": {"headline": {"probe_forget_accuracy_max": 0.3} if method == "npo"
                                                else {"lens_forget_accuracy_max_reason": "not run"}}},
            # the verdict lives in the summary, not in a headline block
            "metrics/summary.json": {"data": {"robustness_score": 0.4} if method == "gd"
                                     else {"robustness_score_reason": "no quant_nf4_recovered"}},
        },
    }


SHOW = [
    {"rev": "workspace", "name": None, "data": exp_data("npo", 2.5e-4, 0.45, 0.01, 0.66)},
    {"rev": "abc1234def", "name": "main", "data": exp_data("npo", 2.5e-4, 0.45, 0.01, 0.66),
     "experiments": [
         {"name": "exp-ga", "revs": [{"rev": "1111111aaa", "name": "exp-ga", "data": exp_data("ga", 4e-4, 0.1, 0.2, 0.5)}]},
         {"name": "exp-gd", "revs": [{"rev": "2222222bbb", "name": "exp-gd", "data": exp_data("gd", 5e-4, 0.3, 0.05, 0.68)}]},
         {"name": "exp-broken", "revs": [{"rev": "3333333ccc", "name": "exp-broken", "error": {"msg": "failed"},
                                          "data": {"metrics": {}}}]},
     ]},
]


def test_rows_from_exp_show(tmp_path):
    rows = experiment_rows(SHOW)
    assert [r["method"] for r in rows] == ["ga", "gd", "npo"]  # workspace and failed runs left out
    ga = rows[0]
    assert (ga["lr"], ga["epochs"], ga["forget_rouge_l"], ga["forget_quality"], ga["model_utility"]) == (4e-4, 5, 0.1, 0.2, 0.5)
    assert ga["experiment"] == "exp-ga" and ga["rev"] == "1111111" and ga["knobs"] == "beta=0.1"
    assert (ga["seed"], ga["unlearn_seed"]) == (42, 0)
    write_csv(rows, tmp_path / "c.csv")
    with open(tmp_path / "c.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    # the documents benchmark's columns are left out: no experiment here has them
    documents = ["verbmem_forget", "verbmem_retain", "knowmem_forget", "knowmem_retain", "privleak_documents"]
    assert list(table[0])[: len(COLUMNS) - len(documents)] == [c for c in COLUMNS if c not in documents]
    write_csv([{**rows[0], "verbmem_forget": 0.25}] + rows[1:], tmp_path / "d.csv")
    with open(tmp_path / "d.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert "verbmem_forget" in header and "verbmem_retain" not in header
    assert table[1]["method"] == "gd" and float(table[1]["forget_quality"]) == 0.05
    # robustness headlines from the stages' metrics; a key the run did not write stays empty
    assert float(table[1]["relearn_recovered"]) == 0.15 and float(table[1]["quant_int4_recovered"]) == -0.5
    assert table[1]["probe_forget_accuracy_max"] == "" and float(table[2]["probe_forget_accuracy_max"]) == 0.3
    assert "lens_forget_accuracy_max_reason" not in table[1]
    assert float(table[1]["robustness_score"]) == 0.4 and table[0]["robustness_score"] == ""
    assert "robustness_score_reason" not in table[1]


def test_pareto_and_best():
    rows = experiment_rows(SHOW)
    front = {r["method"] for r in pareto_front(rows)}
    assert front == {"ga", "gd"}  # npo is beaten by gd on both axes
    assert best_forgetter(rows, target_utility=0.7)["method"] == "gd"  # 0.68 >= 0.63; ga's 0.5 is not
    assert best_forgetter(rows, target_utility=0.9) is None
    refs = reference_points(SHOW)
    assert refs["target"]["model_utility"] == 0.7 and "oracle" not in refs


def test_pareto_plot_is_written(tmp_path):
    plot_pareto(experiment_rows(SHOW), reference_points(SHOW), tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_pareto_plot_draws_one_point_with_bars_per_configuration_over_seeds(tmp_path, monkeypatch):
    import matplotlib.axes

    seeds = [{"name": f"ga-{s}", "revs": [{"rev": f"{s}" * 10, "name": f"ga-{s}",
                                           "data": exp_data("ga", 4e-4, 0.1, fq, mu, unlearn_seed=s)}]}
             for s, fq, mu in ((1, 0.1, 0.5), (2, 0.001, 0.6), (3, 0.01, 0.55))]
    show = [{**SHOW[1], "experiments": SHOW[1]["experiments"][1:] + seeds}]
    drawn = []
    real = matplotlib.axes.Axes.errorbar
    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar", lambda ax, x, y, **kw: drawn.append((x, y, kw)) or real(ax, x, y, **kw))
    plot_pareto(experiment_rows(show), reference_points(show), tmp_path / "p.png")
    (x, y, kw), = drawn  # one configuration has several seeds
    assert x == [0.55] and y[0] == pytest.approx(0.01)  # utility mean; forget quality's geometric mean
    lo, hi = kw["xerr"].ravel()
    assert lo == pytest.approx(hi) and lo == pytest.approx(stats.t.ppf(0.975, 2) * 0.05 / 3 ** 0.5)


def audit_data(method, nf4, relearn, attacks, ppl):
    data = exp_data(method, 1e-3, 0.2, 0.1, 0.6)
    m = data["metrics"]
    m["metrics/quantize.json"]["data"]["headline"]["quant_nf4_recovered"] = nf4
    m["metrics/relearn.json"]["data"]["headline"]["relearn_recovered_over_oracle"] = relearn
    m["metrics/unlearned.json"]["data"]["forget"].update(fluency_perplexity=ppl, repetition_rate=0.05)
    # as `dvc exp show` gives them: counts and rates, no list-valued intervals
    m["metrics/attack.json"] = {"data": {
        "attacks": {a: {"leak_over_oracle": (ku - ko) / 16, "unlearned": {"leaked": ku, "n": 16, "leak_rate": ku / 16},
                        "oracle": {"leaked": ko, "n": 16, "leak_rate": ko / 16}} for a, (ku, ko) in attacks.items()},
        "headline": {"attack_leak_max": 0.5, "attack_leak_over_oracle_max": max(u - o for u, o in attacks.values()) / 16}}}
    return data


def test_audit_table_names_the_failed_views(tmp_path):
    from unlearn_lab.studies.audit import audit_rows, write_audit_csv

    # leaked questions of 16, (unlearned, oracle) per attack
    show = [{"rev": "abc1234def", "name": "main", "data": audit_data(
        "npo", 0.05, 0.02, {"paraphrase": (2, 2), "best_of_n": (4, 1)}, 30.0),
        "experiments": [
            {"name": "e-ga", "revs": [{"rev": "1111111aaa", "name": "e-ga", "data": audit_data(
                "ga", 0.5, 0.3, {"paraphrase": (9, 1), "best_of_n": (0, 0)}, 90.0)}]},
            {"name": "e-gd", "revs": [{"rev": "2222222bbb", "name": "e-gd", "data": audit_data(
                "gd", 0.1, 0.11, {"paraphrase": (0, 0), "best_of_n": (0, 0)}, 59.0)}]},
        ]}]
    rows = {r["method"]: r for r in audit_rows(show, target_fluency=30.0)}
    # ga: NF4 and relearn past 0.1, paraphrase's interval above 0, perplexity 3x the target's
    assert rows["ga"]["fails"] == "nf4 relearn paraphrase fluency"
    # gd: 0.1 is not past the threshold, 0.11 is; 59 < 2 x 30
    assert rows["gd"]["fails"] == "relearn"
    # npo: 4 vs 1 of 16 is +0.19, inside the noise (its interval reaches below 0)
    assert rows["npo"]["fails"] == "none" and rows["npo"]["best_of_n_over_oracle"] == 0.1875
    assert rows["npo"]["best_of_n_over_oracle_ci95"][0] < 0 < rows["ga"]["paraphrase_over_oracle_ci95"][0]
    write_audit_csv(list(rows.values()), tmp_path / "a.csv")
    with open(tmp_path / "a.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    lo, hi = rows["ga"]["paraphrase_over_oracle_ci95"]
    assert table[0]["paraphrase_over_oracle_ci95"] == f"[{lo:.3g}, {hi:.3g}]"
    assert list(table[0])[-1] == "fails" and float(table[0]["forget_fluency_perplexity"]) == 90.0


def test_newcombe_interval_matches_the_published_example():
    """Newcombe (1998), Table II, example (a): 56/70 - 48/80, method 10: 0.0524 to 0.3339."""
    from unlearn_lab.studies.audit import newcombe_interval

    lo, hi = newcombe_interval(56, 70, 48, 80)
    assert (round(lo, 4), round(hi, 4)) == (0.0524, 0.3339)


def test_restore_lists_puts_back_the_intervals_exp_show_drops(tmp_path):
    from unlearn_lab.studies.audit import audit_rows, write_audit_csv
    from unlearn_lab.studies.comparison import restore_lists

    data = audit_data("npo", 0.05, 0.02, {"paraphrase": (2, 2)}, 30.0)
    show = [{"rev": "workspace", "data": {}},
            {"rev": "abc1234def", "name": "main", "data": data, "experiments": []}]
    full = json.loads(json.dumps(data["metrics"]["metrics/unlearned.json"]["data"]))
    full.update(forget_quality_ci95=[0.001, 0.2], model_utility_ci95=[0.5, 0.7])
    asked = []

    def read(rev, path):
        asked.append((rev, path))
        return json.dumps(full) if path == "metrics/unlearned.json" else None

    assert audit_rows(show, 30.0)[0]["forget_quality_ci95"] is None  # what exp show gives
    restore_lists(show, read)
    # every metrics file of the commit was asked for, the workspace entry never
    assert {r for r, _ in asked} == {"abc1234def"} and len(asked) == len(data["metrics"])
    row = audit_rows(show, 30.0)[0]
    assert row["forget_quality_ci95"] == [0.001, 0.2] and row["model_utility_ci95"] == [0.5, 0.7]
    # a file the reader does not have keeps what exp show gave
    assert show[1]["data"]["metrics"]["metrics/attack.json"]["data"]["attacks"]["paraphrase"]["unlearned"]["n"] == 16
    write_audit_csv([row], tmp_path / "a.csv")
    with open(tmp_path / "a.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert table[0]["forget_quality_ci95"] == "[0.001, 0.2]" and table[0]["model_utility_ci95"] == "[0.5, 0.7]"


def test_a_commit_repeating_a_newer_commits_run_is_one_run_and_other_code_is_flagged():
    from unlearn_lab.studies.comparison import baselines, mixed_pipelines

    def commit(rev, stamp, data, exps, code="aaa"):
        data = {**data, "timestamp": stamp, "deps": {"src/m.py": {"hash": code}, "data/x.jsonl": {"hash": rev}}}
        return {"rev": rev, "data": data, "experiments": [
            {"name": n, "revs": [{"rev": n + "0000", "name": n, "data": d}]} for n, d in exps]}

    npo = exp_data("npo", 2.5e-4, 0.45, 0.01, 0.66)
    older = commit("old0000", "2026-11-24T10:00:00", npo, [("exp-ga", exp_data("ga", 4e-4, 0.1, 0.2, 0.5))])
    newer = commit("new0000", "2026-11-24T12:00:00", npo, [("exp-gd", exp_data("gd", 5e-4, 0.3, 0.05, 0.68))])
    # `dvc exp show --rev old --rev new` lists them in the order asked; the newest leads
    show = [{"rev": "workspace", "data": npo}, older, newer]
    assert [e["rev"] for e in baselines(show)] == ["new0000", "old0000"]
    # the deps differ only in data hashes here, so make the runs the same first: then the older
    # commit adds its experiments but not a second copy of the committed npo run
    older["data"]["deps"] = newer["data"]["deps"]
    rows = experiment_rows(show)
    assert sorted((r["method"], r["experiment"]) for r in rows) == [("ga", "exp-ga"), ("gd", "exp-gd"), ("npo", "new0000")]
    assert mixed_pipelines(show) == {}
    other = commit("odd0000", "2026-11-23T09:00:00", npo, [], code="bbb")
    assert mixed_pipelines(show + [other]) == {"odd0000": ["src/m.py"]}
    # a source folder a stage lists whole counts as code too
    folder = commit("dir0000", "2026-11-23T08:00:00", npo, [])
    folder["data"]["deps"] = {**newer["data"]["deps"], "src/unlearn_lab/training/methods": {"hash": "x.dir"}}
    assert mixed_pipelines(show + [folder]) == {"dir0000": ["src/unlearn_lab/training/methods"]}
    # another pipeline's run is a run of its own, unless it gave the very same results
    assert len(experiment_rows(show + [other])) == 3
    other["data"] = {**exp_data("npo", 2.5e-4, 0.40, 0.01, 0.66), "deps": other["data"]["deps"]}
    assert len(experiment_rows(show + [other])) == 4


def test_a_rerun_after_another_methods_knob_changed_is_the_same_run_but_other_outputs_are_not():
    from unlearn_lab.studies.comparison import baselines

    def commit(rev, stamp, weighted_lr, npo_beta=0.1, unlearn_seed=0):
        data = {**exp_data("npo", 2.5e-4, 0.45, 0.01, 0.66, unlearn_seed=unlearn_seed), "timestamp": stamp,
                "deps": {"src/m.py": {"hash": "aaa"}}}
        data["params"]["params.yaml"]["data"]["methods"] = {"npo": {"beta": npo_beta}, "weighted": {"lr": weighted_lr}}
        return {"rev": rev, "data": data, "experiments": []}

    old = commit("old0000", "2026-11-24T10:00:00", 1e-3)
    # weighted retuned: the npo run does not read that knob, so the rerun is the same run
    assert [bool(e["data"]) for e in baselines([old, commit("new0000", "2026-11-24T12:00:00", 3e-4)])] == [True, False]
    # a knob of its own method or another seed makes another run
    assert [bool(e["data"]) for e in baselines([old, commit("new0000", "2026-11-24T12:00:00", 3e-4, npo_beta=0.2)])] == [True, True]
    assert [bool(e["data"]) for e in baselines([old, commit("new0000", "2026-11-24T12:00:00", 1e-3, unlearn_seed=1)])] == [True, True]


def test_the_same_run_on_two_commits_is_one_row_but_another_seed_or_result_is_not():
    def commit(rev, stamp, code, data, exps=()):
        data = {**data, "timestamp": stamp, "deps": {"stages/unlearn.py": {"hash": code}}}
        return {"rev": rev, "data": data, "experiments": [
            {"name": n, "revs": [{"rev": n + "0000", "name": n, "data": d}]} for n, d in exps]}

    npo = exp_data("npo", 2.5e-4, 0.45, 0.01, 0.66)
    # the code changed elsewhere (another commit's unlearn stage), the npo baseline came out the same
    old = commit("old0000", "2026-11-24T10:00:00", "c1", npo, [("exp-npo-s1", exp_data("npo", 2.5e-4, 0.4, 0.02, 0.65, unlearn_seed=1))])
    new = commit("new0000", "2026-11-24T12:00:00", "c2", exp_data("npo", 2.5e-4, 0.45, 0.01, 0.66 + 1e-9, seconds=99.0))
    rows = experiment_rows([old, new])
    assert sorted((r["experiment"], r["unlearn_seed"]) for r in rows) == [("exp-npo-s1", 1), ("new0000", 0)]
    from unlearn_lab.studies.audit import audit_rows
    assert sorted(r["experiment"] for r in audit_rows([old, new], 30.0)) == ["exp-npo-s1", "new0000"]
    # a different result under the same seeds is not dropped: it is another run, and the other-code
    # warning says the pipelines differ
    changed = commit("new0000", "2026-11-24T12:00:00", "c2", exp_data("npo", 2.5e-4, 0.45, 0.01, 0.61))
    assert len(experiment_rows([old, changed])) == 3
    # the same unlearning audited with other settings (fewer logit-lens layers) is still one run
    audited = exp_data("npo", 2.5e-4, 0.45, 0.01, 0.66)
    audited["metrics"]["metrics/represent.json"] = {"data": {"headline": {"probe_forget_accuracy_max": 0.25,
                                                                          "lens_forget_accuracy_max": 0.4}}}
    rows = experiment_rows([old, commit("new0000", "2026-11-24T12:00:00", "c2", audited)])
    assert sorted(r["experiment"] for r in rows) == ["exp-npo-s1", "new0000"]
    assert next(r for r in rows if r["experiment"] == "new0000")["lens_forget_accuracy_max"] == 0.4


def test_an_experiment_still_running_is_not_a_row():
    # while it runs, exp show gives it the baseline's metrics: an npo row named after the rmu run
    running = {"name": "exp-rmu", "executor": {"state": "running"},
               "revs": [{"rev": "4444444ddd", "name": "exp-rmu", "data": exp_data("npo", 2.5e-4, 0.45, 0.01, 0.66)}]}
    done = {"name": "exp-ga", "executor": {"state": "success"},
            "revs": [{"rev": "1111111aaa", "name": "exp-ga", "data": exp_data("ga", 4e-4, 0.1, 0.2, 0.5)}]}
    show = [{"rev": "abc1234def", "name": "main", "data": exp_data("npo", 2.5e-4, 0.45, 0.01, 0.66),
             "experiments": [running, done]}]
    assert [r["experiment"] for r in experiment_rows(show)] == ["exp-ga", "main"]


def test_the_method_comparison_is_chosen_by_params_not_by_name():
    def with_params(data, **changes):
        params = json.loads(json.dumps(data["params"]["params.yaml"]["data"]))
        for key, value in changes.items():
            section, name = key.split("__")
            params.setdefault(section, {})[name] = value
        return {**data, "params": {"params.yaml": {"data": params}}}

    base = with_params(exp_data("npo", 2.5e-4, 0.45, 0.01, 0.66), data__benchmark="synthetic", data__people=10,
                       data__forget_fraction=0.5, unlearn__requests=1)

    def exp(name, data):
        return {"name": name, "revs": [{"rev": name + "000", "name": name, "data": data}]}

    def method(name, fq):
        return with_params(exp_data(name, 4e-4, 0.1, fq, 0.5), data__benchmark="synthetic", data__people=10,
                           data__forget_fraction=0.5, unlearn__requests=1)

    show = [{"rev": "abc1234def", "name": "main", "data": base, "experiments": [
        exp("exp-ga", method("ga", 0.2)),
        # `-S data.benchmark=documents` under an ordinary name
        exp("exp-gd", with_params(method("gd", 0.3), data__benchmark="documents")),
        exp("exp-simnpo", with_params(method("simnpo", 0.4), unlearn__requests=4)),
        exp("exp-rmu", with_params(method("rmu", 0.5), data__forget_fraction=0.1)),
        exp("exp-wga", with_params(method("wga", 0.6), data__split="incident")),
    ]}]
    assert [r["experiment"] for r in experiment_rows(show)] == ["exp-ga", "main"]
    # a study's name prefix still keeps its experiments out
    show[0]["experiments"].append(exp("requests-npo-k1", method("npo", 0.7)))
    assert [r["experiment"] for r in experiment_rows(show)] == ["exp-ga", "main"]
