"""Each loss against a plain-PyTorch re-computation of its formula on the same logits, and one
optimiser step of each method against the forget answer's probability."""
import copy
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from unlearn_lab.errors import UserError
from unlearn_lab.training.methods import METHODS, Step, answer_logprobs, check_knobs, get_method, parse_knobs
from unlearn_lab.training.methods.base import discover, frozen_reference
from unlearn_lab.models.loading import collate, encode_qa
from unlearn_lab.settings import method_names, parse_settings, read_yaml

discover()
# Every registered method (aliases included); names starting with "_" are tests' own.
ALL = sorted(name for name in METHODS if not name.startswith("_"))
# Knobs away from the defaults, so a knob the loss ignores would show. Every registered name
# needs an entry here and a formula in expected_loss (test_the_tables_cover_the_registry).
KNOBS = {
    "ga": {}, "gd": {"gamma": 0.7, "alpha": 1.3}, "ga_kl": {"gamma": 0.8, "alpha": 1.7},
    "npo": {"beta": 0.5, "alpha": 0.8}, "simnpo": {"beta": 2.0, "gamma": 0.3, "alpha": 0.6},
    "idk_dpo": {"beta": 0.3, "alpha": 0.7}, "idk_ap": {"beta": 0.4, "alpha": 1.5},
    "me_gd": {"gamma": 0.3, "alpha": 1.2}, "rmu": {"layer": 1, "steering_coeff": 3.0, "alpha": 5.0, "vector_seed": 2},
    "random_label": {"alpha": 0.5}, "weighted": {"forget_weight": -0.3, "retain_weight": 2.0},
    "wga": {"beta": 0.5, "alpha": 0.9}, "satimp": {"beta1": 2.0, "beta2": 0.5, "alpha": 0.4},
    "undial": {"beta": 3.0, "alpha": 0.6},
    "ce_u": {"skip_first": 2, "alpha": 0.7}, "pdu": {"retain_eps": 0.3, "dual_step": 0.5, "multiplier": 1.7},
    "altpo": {"beta": 0.3, "alpha": 0.7},
    "sure": {"forget": "gd", "saliency_fraction": 0.5, "alpha": 0.7},
    "gru": {"beta": 0.5, "gamma": 0.8, "ema": 0.5, "alpha": 0.6}, "sam_npo": {"beta": 0.5, "rho": 0.05, "alpha": 0.8},
}
# The shared retain term's other choice (`retain: kl`), and gd with it (what ga_kl is).
RETAIN_KL = {"gd": {"gamma": 0.8, "alpha": 1.7, "retain": "kl"}, "npo": {"beta": 0.5, "alpha": 0.8, "retain": "kl"},
             "random_label": {"alpha": 0.5, "retain": "kl"}, "wga": {"beta": 0.5, "alpha": 0.9, "retain": "kl"}}
CASES = [(name, KNOBS.get(name, {})) for name in ALL] + list(RETAIN_KL.items())


def encode(tok, pairs):
    return collate([encode_qa(tok, q, a, 64) for q, a in pairs], tok.pad_token_id)


def views(tok):
    fq = [f"Where does person {i} live?" for i in range(3)]
    rq = [f"What is the job of worker {i}?" for i in range(10, 13)]
    return {
        "forget": encode(tok, [(q, f"Town{i}") for i, q in enumerate(fq)]),
        "retain": encode(tok, [(q, f"Baker number {i}") for i, q in enumerate(rq)]),
        "forget_idk": encode(tok, [(q, "I am not sure about that.") for q in fq]),
        "retain_idk": encode(tok, [(q, "I have no idea.") for q in rq]),
        "forget_wrong": encode(tok, [(q, f"Village{i + 7}") for i, q in enumerate(fq)]),
    }


def logits_of(model, b):
    return model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits.double()


def positions(labels):
    """(row, t) pairs where logits[row, t] predicts answer token labels[row, t + 1]."""
    return [[t for t in range(labels.shape[1] - 1) if labels[row, t + 1] != -100] for row in range(labels.shape[0])]


def token_logps(logits, labels):
    """Per row, the answer-token log-probs, one position at a time."""
    return [torch.stack([torch.log_softmax(logits[row, t], -1)[labels[row, t + 1]] for t in pos])
            for row, pos in enumerate(positions(labels))]


def seq_logp(logits, labels):
    return torch.stack([lp.sum() for lp in token_logps(logits, labels)])


def token_nll(logits, labels):
    """Token-averaged CE over the batch, by torch's own cross_entropy."""
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)


def weighted_ascent(logits, labels, weight_of_p):
    lps = torch.cat(token_logps(logits, labels))
    return (weight_of_p(lps.exp()) * lps).sum() / len(lps)


def expected_loss(name, k, model, ref, v):
    lg = {view: logits_of(model, b) for view, b in v.items()}
    rf = {view: logits_of(ref, b) for view, b in v.items()}
    lab = {view: b["labels"] for view, b in v.items()}
    kls = [F.kl_div(torch.log_softmax(lg["retain"][row, t], -1), torch.log_softmax(rf["retain"][row, t], -1),
                    log_target=True, reduction="sum")
           for row, pos in enumerate(positions(lab["retain"])) for t in pos]
    kl_r = torch.stack(kls).mean()
    # the shared retain term: the retain answers' NLL, or the KL from the reference (`retain: kl`)
    nll_r = kl_r if k.get("retain") == "kl" else token_nll(lg["retain"], lab["retain"])
    if name == "ga":
        return -token_nll(lg["forget"], lab["forget"])
    if name == "gd":
        return -k["gamma"] * token_nll(lg["forget"], lab["forget"]) + k["alpha"] * nll_r
    if name == "ga_kl":
        assert k["retain"] == "kl"
        return -k["gamma"] * token_nll(lg["forget"], lab["forget"]) + k["alpha"] * kl_r
    if name == "npo":
        ratio = seq_logp(lg["forget"], lab["forget"]) - seq_logp(rf["forget"], lab["forget"])
        return -(2 / k["beta"]) * torch.log(torch.sigmoid(-k["beta"] * ratio)).mean() + k["alpha"] * nll_r
    if name == "simnpo":
        mean_lp = torch.stack([lp.mean() for lp in token_logps(lg["forget"], lab["forget"])])
        inner = torch.sigmoid(-k["beta"] * mean_lp - k["gamma"])
        return -(2 / k["beta"]) * torch.log(inner).mean() + k["alpha"] * nll_r
    if name == "idk_dpo":
        win = seq_logp(lg["forget_idk"], lab["forget_idk"]) - seq_logp(rf["forget_idk"], lab["forget_idk"])
        lose = seq_logp(lg["forget"], lab["forget"]) - seq_logp(rf["forget"], lab["forget"])
        return -(2 / k["beta"]) * torch.log(torch.sigmoid(k["beta"] * (win - lose))).mean() + k["alpha"] * nll_r
    if name == "idk_ap":
        nll_r = token_nll(lg["retain"], lab["retain"])
        gap = -seq_logp(lg["retain_idk"], lab["retain_idk"]) + seq_logp(lg["retain"], lab["retain"])
        ap = -(1 / k["beta"]) * torch.log(torch.sigmoid(k["beta"] * gap)).mean()
        return token_nll(lg["forget_idk"], lab["forget_idk"]) + k["alpha"] * ap
    if name == "me_gd":
        vocab = lg["forget"].shape[-1]
        uniform = torch.full((vocab,), -math.log(vocab), dtype=torch.float64)
        kls = [F.kl_div(torch.log_softmax(lg["forget"][row, t], -1), uniform, log_target=True, reduction="sum")
               for row, pos in enumerate(positions(lab["forget"])) for t in pos]
        return k["gamma"] * torch.stack(kls).mean() + k["alpha"] * nll_r
    if name == "random_label":
        return token_nll(lg["forget_wrong"], lab["forget_wrong"]) + k["alpha"] * nll_r
    if name == "weighted":
        ce_f = [-lp.mean() for lp in token_logps(lg["forget"], lab["forget"])]
        ce_r = [-lp.mean() for lp in token_logps(lg["retain"], lab["retain"])]
        terms = [k["forget_weight"] * c for c in ce_f] + [k["retain_weight"] * c for c in ce_r]
        return torch.stack(terms).mean()
    if name == "wga":
        return weighted_ascent(lg["forget"], lab["forget"], lambda p: p ** k["beta"]) + k["alpha"] * nll_r
    if name == "satimp":
        return (weighted_ascent(lg["forget"], lab["forget"], lambda p: p ** k["beta1"] * (1 - p) ** k["beta2"])
                + k["alpha"] * nll_r)
    if name == "undial":
        ces = []
        for row, pos in enumerate(positions(lab["forget"])):
            for t in pos:
                adjusted = rf["forget"][row, t].clone()
                adjusted[lab["forget"][row, t + 1]] -= k["beta"]
                ces.append(-(torch.softmax(adjusted, -1) * torch.log_softmax(lg["forget"][row, t], -1)).sum())
        return torch.stack(ces).mean() + k["alpha"] * nll_r
    if name == "altpo":
        win = seq_logp(lg["forget_wrong"], lab["forget_wrong"]) - seq_logp(rf["forget_wrong"], lab["forget_wrong"])
        lose = seq_logp(lg["forget"], lab["forget"]) - seq_logp(rf["forget"], lab["forget"])
        return -(2 / k["beta"]) * torch.log(torch.sigmoid(k["beta"] * (win - lose))).mean() + k["alpha"] * nll_r
    if name == "ce_u":
        ces = []
        for row, pos in enumerate(positions(lab["forget"])):
            for t in pos[k["skip_first"]:]:
                z = lg["forget"][row, t]
                truth = lab["forget"][row, t + 1]
                q = torch.exp(z - torch.logsumexp(torch.cat([z[:truth], z[truth + 1:]]), 0))
                q[truth] = 0.0
                ces.append(-(q * torch.log_softmax(z, -1)).sum())
        return torch.stack(ces).mean() + k["alpha"] * nll_r
    if name == "pdu":
        gaps = [(lg["forget"][row, t].max() - lg["forget"][row, t].mean()) ** 2
                for row, pos in enumerate(positions(lab["forget"])) for t in pos]
        return torch.stack(gaps).mean() + k["multiplier"] * token_nll(lg["retain"], lab["retain"])
    if name == "sure":
        return -token_nll(lg["forget"], lab["forget"]) + k["alpha"] * nll_r
    if name in ("gru", "sam_npo"):
        # the loss is the NPO forget term alone: the retain gradient joins in shape_gradients
        ratio = seq_logp(lg["forget"], lab["forget"]) - seq_logp(rf["forget"], lab["forget"])
        return k.get("gamma", 1.0) * -(2 / k["beta"]) * torch.log(torch.sigmoid(-k["beta"] * ratio)).mean()
    if name == "rmu":
        return rmu_by_hooks(k, model, ref, v)
    raise AssertionError(name)


def rmu_by_hooks(k, model, ref, v):
    """RMU from the decoder layer's own output, caught with a forward hook."""
    def layer_output(m, b):
        caught = []
        handle = m.model.layers[k["layer"]].register_forward_hook(
            lambda mod, args, out: caught.append(out[0] if isinstance(out, tuple) else out))
        m(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        handle.remove()
        return caught[0].double()

    gen = torch.Generator().manual_seed(k["vector_seed"])
    u = torch.rand(model.config.hidden_size, generator=gen).double()
    control = k["steering_coeff"] * u / torch.linalg.vector_norm(u)

    def mse(a, b, mask):
        rows = [((a[i, t] - b[i, t] if b.dim() == 3 else a[i, t] - b) ** 2).mean()
                for i in range(a.shape[0]) for t in range(a.shape[1]) if mask[i, t]]
        return torch.stack(rows).mean()

    f, r = v["forget"], v["retain"]
    # forget: positions whose next token is part of the answer
    answer_next = torch.zeros_like(f["attention_mask"])
    for i, pos in enumerate(positions(f["labels"])):
        answer_next[i, pos] = 1
    return (mse(layer_output(model, f), control, answer_next)
            + k["alpha"] * mse(layer_output(model, r), layer_output(ref, r), r["attention_mask"]))


def frozen_copy_then_perturb(model):
    """A frozen copy of `model` as the reference, then `model` moved away from it so that
    log-ratios and KLs against the reference are not zero."""
    ref = copy.deepcopy(model).requires_grad_(False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return ref


def test_the_tables_cover_the_registry():
    """A method added without its non-default knobs here (and so without a formula) fails."""
    assert set(KNOBS) == set(ALL) == set(method_names())
    assert len(ALL) >= 14


@pytest.mark.parametrize("name, knobs", CASES, ids=[f"{n}{'-' + k['retain'] if 'retain' in k else ''}" for n, k in CASES])
def test_loss_equals_independent_computation(name, knobs, tiny_model, tok):
    v, ref = views(tok), frozen_copy_then_perturb(tiny_model)
    method = make(name, knobs)
    loss, parts = method.loss(Step(tiny_model, v, frozen_reference(ref)))
    with torch.no_grad():
        want = expected_loss(name, method.knobs, tiny_model, ref, v)
    assert loss.item() == pytest.approx(want.item(), rel=1e-4, abs=1e-5)
    assert all(math.isfinite(x) for x in parts.values())


@pytest.fixture(scope="module")
def memorised(tiny_dir, tok):
    """The tiny model after learning the forget and retain answers (like the target model)."""
    from unlearn_lab.models.loading import load_model

    torch.manual_seed(0)
    return memorise(load_model(tiny_dir), views(tok), 60)


def memorise(model, v, steps: int) -> dict:
    """`model`'s weights after `steps` Adam steps on the forget and retain answers of `v`."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = sum(model(**{k: v[view][k] for k in ("input_ids", "attention_mask", "labels")}).loss
                   for view in ("forget", "retain"))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.state_dict()


# A step size per method that moves the tiny model by a comparable amount.
STEP_LR = {"rmu": 0.5, "weighted": 0.5, "satimp": 2.0, "me_gd": 0.2}
# On a 2-layer model one step of the retain term (weight 5, or SatImp's forget weights of
# p^5 (1-p), about 0.002 at p = 0.3) can outweigh the forget term: these two are checked on
# their forget term alone.
STEP_KNOBS = {"rmu": {"layer": 0, "steering_coeff": 5.0}, "weighted": {"retain_weight": 0.0},
              "satimp": {"alpha": 0.0}}


@pytest.mark.parametrize("name", ALL)
def test_one_step_lowers_forget_probability(name, memorised, tiny_model, tok):
    tiny_model.load_state_dict(memorised)
    v = views(tok)
    ref = copy.deepcopy(tiny_model).requires_grad_(False)
    method = make(name, STEP_KNOBS.get(name, {}))
    with torch.no_grad():
        before = answer_logprobs(logits_of(tiny_model, v["forget"]), v["forget"]["labels"])[0].sum()
    assert before.exp() > 0.01, "the fixture should have memorised the forget answers"
    opt = torch.optim.SGD(tiny_model.parameters(), lr=STEP_LR.get(name, 0.05))
    step = Step(tiny_model, v, frozen_reference(ref))
    loss, _ = method.loss(step)
    loss.backward()
    method.shape_gradients(step, tiny_model)
    opt.step()
    with torch.no_grad():
        after = answer_logprobs(logits_of(tiny_model, v["forget"]), v["forget"]["labels"])[0].sum()
    assert after < before


def check(raw: dict):
    """params.yaml's settings, then its knobs, checked the way the unlearn stage does."""
    return check_knobs(parse_settings(raw))


def test_registry_and_knob_errors():
    with pytest.raises(UserError, match="unknown method 'nope'"):
        get_method("nope")
    with pytest.raises(UserError, match="methods.npo.betta: unknown key; did you mean methods.npo.beta"):
        check({"methods": {"npo": {"betta": 1}}})
    with pytest.raises(UserError, match="methods.npo.beta: must be a number, got 'high'"):
        check({"methods": {"npo": {"beta": "high"}}})
    with pytest.raises(UserError, match="methods.npo.beta: must be > 0"):
        check({"methods": {"npo": {"beta": 0}}})
    with pytest.raises(UserError, match="methods.gd.retain: must be one of nll, kl, got 'kll'; did you mean kl"):
        check({"methods": {"gd": {"retain": "kll"}}})
    # an integer knob is an integer: 3.0 is refused rather than truncated
    with pytest.raises(UserError, match="methods.rmu.layer: must be an integer, got 3.0"):
        check({"methods": {"rmu": {"layer": 3.0}}})
    # knobs of a method not chosen are checked too
    with pytest.raises(UserError, match="methods.wga.beta: must be >= 0"):
        check({"method": "npo", "methods": {"wga": {"beta": -1.0}}})
    assert make("npo", {"beta": 0.2}).beta == 0.2
    assert make("rmu", {"layer": 3}).layer == 3


def test_shipped_knobs_equal_the_declared_defaults():
    """params.yaml spells out each method's defaults (declared in methods/<name>.py)."""
    params = read_yaml(Path(__file__).resolve().parents[1] / "params.yaml")
    assert set(params["methods"]) == set(ALL)
    knobs = check(params)
    for name in ALL:
        assert knobs[name].model_dump() == METHODS[name].Knobs().model_dump(), name
        assert knobs[name].lr == params["methods"][name]["lr"]


def test_ga_kl_is_gd_with_the_kl_retain_term():
    ga_kl, gd = make("ga_kl", {}), make("gd", {"retain": "kl", "alpha": 2.0})
    assert isinstance(ga_kl, type(gd)) and ga_kl.name == "ga_kl"
    assert ga_kl.knobs == gd.knobs and ga_kl.needs_reference and not make("gd", {}).needs_reference
    assert METHODS["ga_kl"].Knobs().lr == 4e-4 and METHODS["gd"].Knobs().lr == 5e-4


def test_alpha_zero_skips_the_retain_forward(tiny_model, tok):
    v, ref = views(tok), frozen_copy_then_perturb(tiny_model)
    calls = []
    hook = tiny_model.register_forward_hook(lambda *args: calls.append(1))
    try:
        for alpha, forwards in ((0.0, 1), (0.8, 2)):
            calls.clear()
            method = make("npo", {"alpha": alpha})
            _, parts = method.loss(Step(tiny_model, v, frozen_reference(ref)))
            assert len(calls) == forwards and ("retain_nll" in parts) == bool(alpha)
    finally:
        hook.remove()


def test_method_names_without_torch():
    """The Makefile's `make methods` list: every method but npo, from file names, torch not imported."""
    code = ("import runpy, sys; runpy.run_module('unlearn_lab.training.methods.names', run_name='__main__'); "
            "print('torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    names, torch_loaded = out.splitlines()
    assert names.split() == [name for name in ALL if name != "npo"] and torch_loaded == "False"


def test_rmu_trains_only_the_mlps_up_to_its_layer(tiny_model):
    # the tiny Llama has 2 layers; tests/test_families.py checks the pattern on every family
    assert make("rmu", {"layer": 1}).trainable_pattern(tiny_model) == r"(^|\.)model\.layers\.(0|1)\.mlp\."
    with pytest.raises(UserError, match="has 2 decoder layers"):
        make("rmu", {"layer": 7}).trainable_pattern(tiny_model)


def make(name, knobs):
    """The method with these knobs, checked the way params.yaml's are."""
    return get_method(name, parse_knobs(name, knobs))


FUSABLE = [name for name in ALL if len(make(name, KNOBS.get(name, {})).forward_views) > 1]


def test_fused_forward_returns_each_views_own_logits(tiny_model, tok):
    v = views(tok)
    assert v["forget"]["input_ids"].shape[1] != v["retain"]["input_ids"].shape[1], "the views should need padding"
    with torch.no_grad():
        alone = {name: logits_of(tiny_model, v[name]) for name in ("forget", "retain")}
        step = Step(tiny_model, v, fuse=("forget", "retain"))
        together = {name: step.logits(name).double() for name in ("forget", "retain")}
    for name in alone:
        # the step keeps each view's answer window: the last positions, from the one before its
        # earliest answer token
        window = step.labels(name).shape[1]
        assert window < v[name]["input_ids"].shape[1]
        assert together[name].shape == alone[name][:, -window:].shape
        torch.testing.assert_close(together[name], alone[name][:, -window:], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", FUSABLE)
def test_fused_views_leave_loss_and_gradient_unchanged(name, tiny_model, tok):
    v, ref = views(tok), frozen_copy_then_perturb(tiny_model)
    method = make(name, KNOBS[name])

    def loss_and_grads(fuse=()):
        tiny_model.zero_grad()
        loss, parts = method.loss(Step(tiny_model, v, frozen_reference(ref), fuse))
        loss.backward()
        return loss.item(), parts, {n: p.grad.clone() for n, p in tiny_model.named_parameters()}

    separate = loss_and_grads()
    calls = []
    hook = tiny_model.register_forward_hook(lambda *args: calls.append(1))
    try:
        fused = loss_and_grads(method.forward_views)
    finally:
        hook.remove()
    assert len(calls) == 1, "every view the loss runs should come from the one padded forward"
    assert fused[0] == pytest.approx(separate[0], abs=1e-5)
    assert fused[1] == pytest.approx(separate[1], abs=1e-5)
    for n, grad in separate[2].items():
        torch.testing.assert_close(fused[2][n], grad, atol=1e-5, rtol=1e-4)


def test_pdu_multiplier_follows_dual_ascent(tiny_model, tok):
    """lambda_{k+1} = max(0, lambda_k + dual_step (NLL_r - eps)), used in the loss before the update."""
    v = views(tok)
    method = make("pdu", {"retain_eps": 0.0, "dual_step": 0.5, "multiplier": 0.2})
    tiny_model.train()
    nll_r = token_nll(logits_of(tiny_model, v["retain"]), v["retain"]["labels"]).item()
    _, parts = method.loss(Step(tiny_model, v))
    assert parts["multiplier"] == 0.2 and method.multiplier == pytest.approx(0.2 + 0.5 * nll_r, rel=1e-5)
    high = make("pdu", {"retain_eps": nll_r + 10.0, "dual_step": 1.0, "multiplier": 0.2})
    high.loss(Step(tiny_model, v))
    assert high.multiplier == 0.0  # clipped at 0 once the constraint holds by a margin
    tiny_model.eval()
    frozen = make("pdu", {"multiplier": 0.2})
    frozen.loss(Step(tiny_model, v))
    assert frozen.multiplier == 0.2  # evaluation forwards leave it alone


def test_ce_u_is_entropy_of_the_rest_minus_log_of_its_mass(tiny_model, tok):
    """With q the model's distribution without the true token y, renormalised:
    CE(q, p) = -sum_{v != y} q_v (log q_v + log(1 - p_y)) = H(q) - log(1 - p_y), per position."""
    v = views(tok)
    method = make("ce_u", {"skip_first": 0, "alpha": 0.0})
    loss, _ = method.loss(Step(tiny_model, v))
    with torch.no_grad():
        lg, lab = logits_of(tiny_model, v["forget"]), v["forget"]["labels"]
        terms = []
        for row, pos in enumerate(positions(lab)):
            for t in pos:
                p = torch.softmax(lg[row, t], -1)
                y = lab[row, t + 1]
                q = torch.cat([p[:y], p[y + 1:]]) / (1 - p[y])
                terms.append(-(q * q.log()).sum() - torch.log1p(-p[y]))
    assert loss.item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-4)


def flat(grads):
    return torch.cat([g.reshape(-1).double() for g in grads])


def grads_by_hand(model, loss):
    model.zero_grad()
    loss.backward()
    return flat([p.grad for p in model.parameters()])


def shaped_gradient(method, model, v, ref):
    """The flat gradient a training step leaves after the method's `shape_gradients`, and its parts."""
    model.zero_grad()
    step = Step(model, v, frozen_reference(ref))
    loss, parts = method.loss(step)
    loss.backward()
    method.shape_gradients(step, model)
    return flat([p.grad for p in model.parameters()]), parts


@pytest.mark.parametrize("planted", ["conflict", "agree"])
def test_gru_projects_the_forget_gradient_only_on_conflict(planted, tiny_model, tok):
    v, ref = views(tok), frozen_copy_then_perturb(tiny_model)
    knobs = {"beta": 0.5, "ema": 0.5, "alpha": 0.6}
    method = make("gru", knobs)
    k = method.knobs
    g_f = grads_by_hand(tiny_model, expected_loss("gru", k, tiny_model, ref, v))
    g_r = grads_by_hand(tiny_model, token_nll(logits_of(tiny_model, v["retain"]), v["retain"]["labels"]))
    # a planted past average, pointing against the forget gradient or along it
    past = -g_f if planted == "conflict" else g_f
    shapes = [p.shape for p in tiny_model.parameters()]
    method._ema = list(torch.split(past.float(), [s.numel() for s in shapes]))
    method._ema = [t.reshape(s) for t, s in zip(method._ema, shapes)]
    m = 0.5 * past + 0.5 * g_r
    want_f = g_f - (g_f @ m) / (m @ m) * m if g_f @ m < 0 else g_f
    got, parts = shaped_gradient(method, tiny_model, v, ref)
    torch.testing.assert_close(got, want_f + 0.6 * g_r, rtol=1e-4, atol=1e-6)
    assert parts["conflict"] == float(planted == "conflict")
    assert parts["cosine"] == pytest.approx(float((g_f @ m) / (g_f.norm() * m.norm())), rel=1e-4)
    if planted == "conflict":
        assert float(want_f @ m) == pytest.approx(0.0, abs=1e-6 * float(g_f.norm() * m.norm()))


def test_sam_npo_takes_the_forget_gradient_at_the_perturbed_weights(tiny_model, tok):
    v, ref = views(tok), frozen_copy_then_perturb(tiny_model)
    method = make("sam_npo", {"beta": 0.5, "rho": 0.05, "alpha": 0.8})
    k = method.knobs
    original = copy.deepcopy(tiny_model.state_dict())
    # by hand: the NPO gradient at theta, the step eps = rho g / ||g||, the NPO gradient there
    g = grads_by_hand(tiny_model, expected_loss("sam_npo", k, tiny_model, ref, v))
    shifted_model = copy.deepcopy(tiny_model)
    with torch.no_grad():
        offset = 0
        for p in shifted_model.parameters():
            n = p.numel()
            p.add_((0.05 * g[offset:offset + n] / g.norm()).reshape(p.shape).to(p.dtype))
            offset += n
    g_sam = grads_by_hand(shifted_model, expected_loss("sam_npo", k, shifted_model, ref, v))
    g_r = grads_by_hand(tiny_model, token_nll(logits_of(tiny_model, v["retain"]), v["retain"]["labels"]))
    got, parts = shaped_gradient(method, tiny_model, v, ref)
    torch.testing.assert_close(got, g_sam + 0.8 * g_r, rtol=1e-3, atol=1e-6)
    for name, value in tiny_model.state_dict().items():
        assert torch.equal(value, original[name]), "the weights must come back exactly"
    assert "sam_forget_loss" in parts


def test_sure_trains_only_the_modules_with_the_largest_forget_gradient(tiny_model, tok):
    v, ref = views(tok), frozen_copy_then_perturb(tiny_model)
    method = make("sure", {"forget": "gd", "saliency_fraction": 0.3, "alpha": 0.7})
    # by hand: squared gradient norm of -NLL_f per module (its weight and bias together)
    tiny_model.zero_grad()
    (-token_nll(logits_of(tiny_model, v["forget"]), v["forget"]["labels"])).backward()
    per_module = {}
    for name, p in tiny_model.named_parameters():
        module = name.rsplit(".", 1)[0]
        per_module[module] = per_module.get(module, 0.0) + float(p.grad.double().square().sum())
    keep = math.ceil(0.3 * len(per_module))
    top = set(sorted(per_module, key=per_module.get, reverse=True)[:keep])
    tiny_model.zero_grad()
    step = Step(tiny_model, v, frozen_reference(ref))
    loss, _ = method.loss(step)
    loss.backward()
    method.shape_gradients(step, tiny_model)
    assert set(method.salient) == top
    for name, p in tiny_model.named_parameters():
        moved = bool(p.grad.abs().sum() > 0)
        assert moved == (name.rsplit(".", 1)[0] in top), name


def test_sure_with_ga_has_no_retain_term():
    method = make("sure", {"forget": "ga", "alpha": 1.0})
    assert not method.retain_on and method.forward_views == ("forget",) and not method.needs_reference
