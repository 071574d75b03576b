"""The scale study: the forget fraction of each size, its rows from `dvc exp show --json`, kept
out of the method comparison, and its plot."""
import pytest

from unlearn_lab.studies.comparison import experiment_rows
from unlearn_lab.data.synthetic import n_forget_people
from unlearn_lab.studies.scale import experiment_name, forget_fraction, scale_plot, scale_rows


def run_data(fraction, n, fq, mu, rouge, method="npo", benchmark="synthetic", requests=1):
    return {
        "params": {"params.yaml": {"data": {"method": method, "seed": 42,
                                            "unlearn": {"epochs": 2, "seed": 0, "requests": requests},
                                            "data": {"benchmark": benchmark, "people": 10, "forget_fraction": fraction}}}},
        "metrics": {
            "metrics/unlearn.json": {"data": {"method": method, "lr": 5e-4, "epochs": 2, "knobs": {}}},
            "metrics/unlearned.json": {"data": {
                "forget": {"n": n, "rouge_l_recall": rouge, "rouge_l_recall_ci95": [rouge - 0.1, rouge + 0.1]},
                "retain": {"rouge_l_recall": 0.8}, "forget_quality": fq, "forget_quality_ci95": [fq / 10, fq * 2],
                "model_utility": mu, "model_utility_ci95": [mu - 0.05, mu + 0.05]}},
        },
    }


SHOW = [
    {"rev": "workspace", "name": None, "data": run_data(0.5, 40, 1e-4, 0.6, 0.43)},
    {"rev": "abc1234def", "name": "main", "data": run_data(0.5, 40, 1e-4, 0.6, 0.43), "experiments": [
        {"name": "scale-1p", "revs": [{"rev": "1111111aaa", "name": "scale-1p", "data": run_data(0.1, 8, 0.3, 0.65, 0.2)}]},
        {"name": "scale-3p", "revs": [{"rev": "3333333aaa", "name": "scale-3p", "data": run_data(0.3, 24, 0.01, 0.62, 0.3)}]},
        {"name": "requests-npo-k4", "revs": [{"rev": "5555555aaa", "name": "requests-npo-k4",
                                              "data": run_data(0.5, 40, 0.5, 0.5, 0.1, requests=4)}]},
        # study experiments under ordinary names: their params, not their names, leave them out
        {"name": "npo-k4", "revs": [{"rev": "6666666aaa", "name": "npo-k4",
                                     "data": run_data(0.5, 40, 0.5, 0.5, 0.1, requests=4)}]},
        {"name": "half", "revs": [{"rev": "7777777aaa", "name": "half", "data": run_data(0.2, 16, 0.5, 0.5, 0.1)}]},
        {"name": "scale-4p", "revs": [{"rev": "8888888aaa", "name": "scale-4p",
                                       "data": run_data(0.4, 32, 0.5, 0.5, 0.1, benchmark="documents")}]},
        {"name": "gd-seed1", "revs": [{"rev": "4444444aaa", "name": "gd-seed1",
                                       "data": run_data(0.5, 40, 0.2, 0.5, 0.1, method="gd")}]},
        {"name": "scale-2p", "revs": [{"rev": "2222222aaa", "name": "scale-2p", "error": {"msg": "failed"},
                                       "data": {"metrics": {}}}]},
    ]},
]


@pytest.mark.parametrize("total", [10, 12, 7])
def test_each_size_forgets_exactly_that_many_people(total):
    for people in range(1, total):
        assert n_forget_people(forget_fraction(people, total), total) == people
    for bad in (0, total):
        with pytest.raises(ValueError, match="at least 1 and leave someone"):
            forget_fraction(bad, total)
    assert experiment_name(3) == "scale-3p"


def test_rows_are_the_committed_run_and_the_scale_experiments():
    rows = scale_rows(SHOW)
    # scale-4p forgets on another benchmark: not a size of this study
    assert [(r["experiment"], r["forget_people"], r["forget_questions"]) for r in rows] == [
        ("scale-1p", 1, 8), ("scale-3p", 3, 24), ("committed run", 5, 40)]
    # each row names the commit it ran on: the experiments' baseline
    assert {r["commit"] for r in rows} == {"abc1234def"}
    # only the sizes asked for, and the committed run
    assert [r["experiment"] for r in scale_rows(SHOW, people=[3])] == ["scale-3p", "committed run"]
    one = rows[0]
    assert (one["forget_quality"], one["forget_quality_low"], one["forget_quality_high"]) == (0.3, pytest.approx(0.03), 0.6)
    assert one["model_utility_low"] == pytest.approx(0.6) and one["forget_rouge_l_recall"] == 0.2
    # the method comparison leaves the scale study's (other forget sets) and the request study's
    # (unlearn stage alone) experiments out
    assert [r["experiment"] for r in experiment_rows(SHOW)] == ["gd-seed1", "main"]


def test_scale_plot_is_written_with_each_panel_showing_its_metric(tmp_path, monkeypatch):
    import unlearn_lab.studies.scale as scale

    rows = scale_rows(SHOW)
    scale_plot(rows, tmp_path / "scale.png")
    assert (tmp_path / "scale.png").stat().st_size > 10_000
    caught = {}
    monkeypatch.setattr(scale, "save", lambda fig, path: caught.setdefault("fig", fig))
    scale_plot(rows, tmp_path / "again.png")
    drawn = {ax.get_title(): list(ax.get_lines()[0].get_ydata()) for ax in caught["fig"].axes}
    assert drawn["model utility"] == [r["model_utility"] for r in rows]
    assert drawn["forget ROUGE-L recall"] == [r["forget_rouge_l_recall"] for r in rows]
    assert drawn["forget quality (KS p-value vs the oracle)"] == [r["forget_quality"] for r in rows]
