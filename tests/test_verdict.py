"""The relearning control on the oracle (recovered_over_oracle) and the one robustness verdict,
each against numbers worked out by hand."""
import copy

import pytest
import torch

from unlearn_lab.models.hardware import resolve
from unlearn_lab.robustness.common import score_sets
from unlearn_lab.robustness.relearning import add_oracle_control, headline, relearn, relearn_result
from unlearn_lab.robustness.scores import recovered_over_oracle
from unlearn_lab.robustness.verdict import harmonic_mean, robustness_score
from unlearn_lab.settings import Eval, Hardware, Model, Relearn

from .conftest import qa_record

# ---------------------------------------------------------------- recovered over the oracle


def test_recovered_over_oracle_by_hand():
    # target 0.9, oracle 0.1 before the attack; the attack lifts the oracle to 0.3 and the
    # unlearned model to 0.5: (0.5 - 0.3) / (0.9 - 0.1) = 0.25
    assert recovered_over_oracle(0.5, oracle_relearned=0.3, target=0.9, oracle=0.1) == pytest.approx(0.25)
    # the unlearned model behaves as the oracle under attack: 0, whatever the attack teaches
    assert recovered_over_oracle(0.3, 0.3, 0.9, 0.1) == 0.0
    assert recovered_over_oracle(0.2, 0.3, 0.9, 0.1) == pytest.approx(-0.125)
    # a score that falls with knowledge: (0.4 - 0.6) / (0.2 - 1.0) = 0.25, the same fraction
    assert recovered_over_oracle(0.4, 0.6, target=0.2, oracle=1.0) == pytest.approx(0.25)
    assert recovered_over_oracle(0.5, 0.3, 0.4, 0.4) is None


def test_oracle_control_keys_and_reasons():
    keys = ("forget_rouge_l_recall", "forget_prob", "forget_truth_ratio")
    scores = dict(zip(keys, (0.5, 0.5, 0.5)))
    out = add_oracle_control(scores, dict(zip(keys, (0.3, 0.3, 0.3))), target=dict(zip(keys, (0.9, 0.9, 0.4))),
                             oracle=dict(zip(keys, (0.1, 0.5, 0.4))))
    assert out["recovered_over_oracle"] == pytest.approx(0.25)
    assert out["recovered_over_oracle_prob"] == pytest.approx(0.5)
    assert "target knows no more than the oracle" in out["recovered_over_oracle_truth_ratio_reason"]
    none = add_oracle_control(scores, None, target=scores, oracle=None, reason="no oracle: world benchmark")
    assert none["recovered_over_oracle_reason"] == "no oracle: world benchmark"
    assert headline({"relearned": none})["relearn_recovered_over_oracle_reason"] == "no oracle: world benchmark"


def test_relearn_control_on_two_tiny_models(tiny_model, tok, tmp_path):
    """The same attack on an 'unlearned' model and on an oracle: the stored figure is the
    formula applied to the stored scores, and a model identical to the oracle scores exactly 0
    (the control repeats the attack bit for bit: same data, steps, lr and seed)."""
    records = [qa_record(i) for i in range(4)]
    attack, scored = records[0::2], {"forget": records[1::2]}
    eval_cfg = Eval(max_new_tokens=4, batch_size=2, gen_batch_size=2)
    cfg, model_cfg, hw = Relearn(steps=3, lr=0.01, batch_size=2), Model(lora=None, max_length=64), resolve(Hardware())
    oracle = copy.deepcopy(tiny_model)
    target = copy.deepcopy(tiny_model)
    with torch.no_grad():  # a target that knows something else: its weights moved
        for p in target.parameters():
            p.add_(torch.randn_like(p) * 0.05)

    def attacked(model, name):
        model, report = relearn(copy.deepcopy(model), tok, attack, model_cfg, cfg, hw, tmp_path / name, seed=0)
        return score_sets(model, tok, scored, eval_cfg, name)[0], report

    full = {name: score_sets(m, tok, scored, eval_cfg, name)[0]
            for name, m in (("target", target), ("oracle", oracle))}
    oracle_after, _ = attacked(oracle, "oracle")
    for unlearned, twin in ((copy.deepcopy(oracle), True), (target, False)):
        after, report = attacked(unlearned, "unlearned")
        before = score_sets(unlearned, tok, scored, eval_cfg, "u")[0]
        result = relearn_result("forget", report, attack, scored["forget"],
                                {**full, "unlearned": before}, after, oracle_after)
        # truth ratio: a random tiny model's answer probabilities are ~1e-5, too close to compare
        value = result["relearned"]["recovered_over_oracle_truth_ratio"]
        t, o = full["target"]["forget_truth_ratio"], full["oracle"]["forget_truth_ratio"]
        assert value == pytest.approx((after["forget_truth_ratio"] - oracle_after["forget_truth_ratio"]) / (t - o))
        if twin:
            assert value == 0.0
        assert result["oracle_relearned"] == oracle_after and result["oracle"] == full["oracle"]


# ---------------------------------------------------------------- the verdict


def test_harmonic_mean_by_hand():
    assert harmonic_mean([0.5, 1.0]) == pytest.approx(2 / 3)  # 2 / (2 + 1)
    assert harmonic_mean([0.25, 0.75]) == pytest.approx(0.375)  # 2 * 0.1875 / 1
    assert harmonic_mean([0.0, 1.0]) == 0.0


def test_robustness_score_by_hand():
    # 1 - 0.5 = 0.5 and 1 - 0.25 = 0.75: 2 * 0.5 * 0.75 / 1.25 = 0.6
    got = robustness_score({"quant_nf4_recovered": 0.5, "relearn_recovered_over_oracle": 0.25, "other": 9})
    assert got == {"robustness_score": pytest.approx(0.6)}
    # clipped: a negative recovery counts as 0, one above 1 as 1
    assert robustness_score({"quant_nf4_recovered": -0.4, "relearn_recovered_over_oracle": 0.5}) == \
        {"robustness_score": pytest.approx(2 * 1.0 * 0.5 / 1.5)}
    assert robustness_score({"quant_nf4_recovered": 1.3, "relearn_recovered_over_oracle": 0.0}) == \
        {"robustness_score": 0.0}
    assert robustness_score({"quant_nf4_recovered": 0.0, "relearn_recovered_over_oracle": 0.0}) == \
        {"robustness_score": 1.0}


def test_robustness_score_says_which_input_is_missing():
    out = robustness_score({"quant_nf4_recovered_reason": "bitsandbytes was not run: quantize.bnb is false",
                            "relearn_recovered_over_oracle": 0.2})
    assert out == {"robustness_score_reason": "no quant_nf4_recovered (NF4 quantization): bitsandbytes was not run: "
                                              "quantize.bnb is false"}
    out = robustness_score({"quant_nf4_recovered": float("nan")})
    assert "no quant_nf4_recovered" in out["robustness_score_reason"]
    assert "no relearn_recovered_over_oracle (relearning over the oracle): not in any robustness stage's" \
        in out["robustness_score_reason"]
