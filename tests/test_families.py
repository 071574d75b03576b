"""Every model family the project's users bring, stage by stage, on tiny random instances that
transformers builds offline: Llama, Qwen2, Qwen3, Phi-3 (fused projections), OLMo, OLMo 2,
Gemma 2 (eager attention, soft-capped logits), Gemma 3 (text), Mistral, Nemotron, GPT-NeoX,
GPT-2 (Conv1D) and OPT (final norm registered before the layers, feed-forward on the block). The
module paths each family is expected to use are written out here, apart from the code that finds
them (architecture.py)."""
import copy
import math

import pytest
import torch

from unlearn_lab.errors import UserError
from unlearn_lab.models import architecture, hardware
from unlearn_lab.evaluation.questions import answer_nlls, evaluate_set, generate_answers
from unlearn_lab.training.methods import Step, answer_logprobs
from unlearn_lab.training.methods.base import frozen_reference
from unlearn_lab.models.loading import add_lora, encode_qa, load_model, load_tokenizer, prepare_base, read_meta
from unlearn_lab.robustness.attacks import build_probes, run_probes
from unlearn_lab.robustness.quantization import bnb_quantized, bnb_unavailable_reason, quantize_linear_weights
from unlearn_lab.robustness.relearning import relearn
from unlearn_lab.robustness.representation import answer_layer_readouts, probe_all_layers
from unlearn_lab.settings import Attack, Eval, Finetune, Hardware, Lora, Model, Relearn, Tiny
from unlearn_lab.training.finetune import finetune
from unlearn_lab.training.unlearning import restrict_trainable

from .test_attacks import FORGET, POOL, RETAIN
from .test_methods import ALL, STEP_KNOBS, logits_of, make, memorise, views

# model_type -> (the decoder-layer list, the final norm) as each family names them.
FAMILIES = {
    "llama": ("model.layers", "model.norm"), "qwen2": ("model.layers", "model.norm"),
    "qwen3": ("model.layers", "model.norm"), "phi3": ("model.layers", "model.norm"),
    "olmo": ("model.layers", "model.norm"), "olmo2": ("model.layers", "model.norm"),
    "gemma2": ("model.layers", "model.norm"), "gemma3_text": ("model.layers", "model.norm"),
    "mistral": ("model.layers", "model.norm"), "nemotron": ("model.layers", "model.norm"),
    "gpt_neox": ("gpt_neox.layers", "gpt_neox.final_layer_norm"), "gpt2": ("transformer.h", "transformer.ln_f"),
    "opt": ("model.decoder.layers", "model.decoder.final_layer_norm"),
}
# model_type -> a block's feed-forward modules, where they are not its one `mlp` child.
MLPS = {"opt": ("fc1", "fc2")}
LAYERS = 4
MIDDLE = 2


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, tmp_path_factory):
    """(model_type, base folder): 4 layers, hidden 64 (a multiple of bitsandbytes' 4-bit block)."""
    out = tmp_path_factory.mktemp(f"family-{request.param}")
    prepare_base(Model(source="tiny-random", tiny=Tiny(layers=LAYERS, hidden=64, architecture=request.param)), out, 0)
    return request.param, out


@pytest.fixture(scope="module")
def family_tok(family):
    return load_tokenizer(family[1])


def fresh(family):
    torch.manual_seed(0)
    return load_model(family[1])


def answer_logp(model, batch):
    with torch.no_grad():
        return answer_logprobs(logits_of(model, batch), batch["labels"])[0].sum().item()


def test_prepare_from_a_local_folder_keeps_the_weights(family, tmp_path):
    name, folder = family
    prepare_base(Model(source=str(folder)), tmp_path, seed=0)
    meta = read_meta(tmp_path)
    assert meta["source"] == str(folder) and meta["prompt_format"] == "chat_template"
    a, b = load_model(folder).state_dict(), load_model(tmp_path).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert load_model(tmp_path).config.model_type == name


def test_the_architecture_is_read_through_the_models_own_accessors(family):
    name, _ = family
    model = fresh(family)
    stack, norm = FAMILIES[name]
    modules = dict(model.named_modules())
    assert architecture.layer_stack(model) == (stack, modules[stack])
    assert architecture.final_norm(model) is modules[norm]
    assert architecture.layer(model, MIDDLE) is modules[f"{stack}.{MIDDLE}"]
    mlps = MLPS.get(name, ("mlp",))
    assert architecture.mlp(model, MIDDLE) == [modules[f"{stack}.{MIDDLE}.{m}"] for m in mlps]
    # the attention kernel `auto` resolves to: sdpa, except where the family has none (Gemma 2)
    assert model.config._attn_implementation == ("eager" if name == "gemma2" else "sdpa")


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_finetune_learns_the_answers(family, family_tok, lora, tmp_path):
    model = fresh(family)
    records = FORGET + RETAIN[:2]
    before = answer_nlls(model, family_tok, [(r["question"], r["answer_text"]) for r in records])
    cfg = Model(max_length=64, lora=Lora(r=4, alpha=8) if lora else None)
    trained, report = finetune(model, family_tok, records, cfg, Finetune(epochs=3, batch_size=4, lr=1e-2 if lora else 1e-3,
                               checkpoint=False), hardware.resolve(Hardware()), tmp_path, seed=0)
    after = answer_nlls(trained, family_tok, [(r["question"], r["answer_text"]) for r in records])
    assert math.isfinite(report["train_loss"]) and after.mean() < before.mean()
    if lora:
        # every adapter's B starts at zero; training must move them (on GPT-2's Conv1D too)
        b = [p for n, p in trained.named_parameters() if "lora_B" in n]
        assert b and all(p.abs().sum() > 0 for p in b)


@pytest.fixture(scope="module")
def memorised(family, family_tok):
    """The family's tiny model after learning the forget and retain answers (like a target)."""
    return memorise(fresh(family), views(family_tok), 20)


# What a step of each method promises to move, where it is not "the forget answer falls":
# (view whose answer log-probability it raises) or RMU's forget activation MSE, which falls.
RAISES = {"idk_ap": "forget_idk", "random_label": "forget_wrong"}
# On these 4-layer random models the forget term of these does not lower the half-memorised forget
# answers on every family to first order (me_gd flattens towards uniform, idk_dpo and altpo move
# a margin or learn an alternative, ce_u and satimp weight a few tokens, pdu's multiplier weighs
# the retain constraint): here they are checked for a finite loss only; their one-step promise
# is tested on the Llama of test_methods.
FINITE_ONLY = ("me_gd", "idk_dpo", "pdu", "altpo", "ce_u", "satimp")


def test_one_step_of_every_method(family, family_tok, memorised):
    """Each registered method: a finite loss, and its (shaped) gradient step moves the forget
    answer's probability down to first order: <grad log p_forget, -grad L> < 0 (idk_ap and
    random_label: their replacement answer's up; RMU: its middle layer's forget activations
    towards the control vector). First order, so no step size is tuned per family."""
    model = fresh(family)
    v = views(family_tok)
    params = [p for p in model.parameters()]
    failed = []
    for name in ALL:
        model.load_state_dict(memorised)
        model.zero_grad(set_to_none=True)
        knobs = {"layer": MIDDLE, "steering_coeff": 5.0, "alpha": 1.0} if name == "rmu" else STEP_KNOBS.get(name, {})
        method = make(name, knobs)
        ref = frozen_reference(copy.deepcopy(model).requires_grad_(False))
        step = Step(model, v, ref)
        loss, parts = method.loss(step)
        if not (math.isfinite(loss.item()) and all(math.isfinite(x) for x in parts.values())):
            failed.append(f"{name}: non-finite loss {loss.item()} {parts}")
            continue
        if name in FINITE_ONLY:
            continue
        # the promise is the forget term's (the shared retain term is tested on its own elsewhere)
        model.zero_grad(set_to_none=True)
        step = Step(model, v, ref)
        method.forget_loss(step)[0].backward()
        method.shape_gradients(step, model)
        update = [torch.zeros_like(p) if p.grad is None else -p.grad.detach().clone() for p in params]
        model.zero_grad(set_to_none=True)
        if name == "rmu":
            watched, sign = method.loss(Step(model, v, ref))[0], -1.0
        else:
            batch = v[RAISES.get(name, "forget")]
            watched = answer_logprobs(logits_of(model, batch), batch["labels"])[0].sum()
            sign = 1.0 if name in RAISES else -1.0
        grads = torch.autograd.grad(watched, params, allow_unused=True)
        change = sum((g.double() * u.double()).sum() for g, u in zip(grads, update) if g is not None)
        if not sign * change > 0:
            failed.append(f"{name}: first-order change {change.item():.3g} of the promised quantity")
    assert not failed, failed


def test_rmu_trains_the_mlps_up_to_a_middle_layer(family, family_tok):
    name, _ = family
    stack, mlps = FAMILIES[name][0], MLPS.get(name, ("mlp",))
    method = make("rmu", {"layer": MIDDLE, "steering_coeff": 5.0, "alpha": 1.0})
    for lora in (False, True):
        model = fresh(family)
        if lora:
            model = add_lora(model, Lora(r=4, alpha=8))
        restrict_trainable(model, method.trainable_pattern(model))
        trained = {n for n, p in model.named_parameters() if p.requires_grad}
        wanted = {n for n, p in model.named_parameters()
                  if any(f"{stack}.{i}.{m}." in n for i in range(MIDDLE - 2, MIDDLE + 1) for m in mlps)
                  and (not lora or "lora_" in n)}
        assert trained == wanted and trained
    model = fresh(family)
    restrict_trainable(model, method.trainable_pattern(model))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    v = views(family_tok)
    ref = copy.deepcopy(model).requires_grad_(False)
    loss, _ = method.loss(Step(model, v, frozen_reference(ref)))
    loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved and moved <= {n for n, p in model.named_parameters() if p.requires_grad}


def test_evaluation_scores_every_row(family, family_tok):
    model = fresh(family)
    rows, summary = evaluate_set(model, family_tok, FORGET, Eval(bootstrap=0, max_new_tokens=4), "forget",
                                 bertscore=False, judge=model)
    assert len(rows) == len(FORGET)
    numbers = [v for r in rows for v in r.values() if isinstance(v, float)]
    assert numbers and all(math.isfinite(v) for v in numbers)
    assert math.isfinite(summary["prob"]) and math.isfinite(summary["fluency_perplexity"])


def test_representation_and_logit_lens_use_the_models_own_norm_and_head(family, family_tok):
    model = fresh(family)
    questions = [r["question"] for r in FORGET]
    answers = [[r["answer_text"], r["paraphrased_answer"]] for r in FORGET]
    pooled, lens = answer_layer_readouts(model, family_tok, questions, answers, batch_size=2, lens=True)
    assert pooled.shape == (len(FORGET), 2, LAYERS + 1, 64) and lens.shape == (len(FORGET), 2, LAYERS + 1)
    assert torch.isfinite(torch.as_tensor(lens)).all()
    # the last layer's lens is the model's own prediction: minus the answer NLL of a plain forward
    plain = answer_nlls(model, family_tok, [(q, a) for q, pair in zip(questions, answers) for a in pair])
    assert lens[:, :, -1].reshape(-1) * -1 == pytest.approx(plain, abs=1e-4)
    # the norm the lens uses turns the last block's output into the model's final hidden state
    enc = family_tok(questions[0], return_tensors="pt")
    caught = []
    handle = architecture.layer(model, LAYERS - 1).register_forward_hook(
        lambda m, a, out: caught.append(out[0] if isinstance(out, tuple) else out))
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    handle.remove()
    with torch.no_grad():
        assert torch.allclose(architecture.final_norm(model)(caught[0]), out.hidden_states[-1], atol=1e-5)
        assert torch.allclose(architecture.head_logits(model, out.hidden_states[-1]), out.logits, atol=1e-4)
    probe = probe_all_layers(pooled, pooled)
    assert len(probe["forget_accuracy"]) == LAYERS + 1 and all(0 <= a <= 1 for a in probe["forget_accuracy"])


def tiny_opt(**overrides):
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    config = AutoConfig.for_model("opt", vocab_size=64, hidden_size=32, word_embed_proj_dim=32, ffn_dim=64,
                                  num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=64,
                                  **overrides)
    return AutoModelForCausalLM.from_config(config)


def test_the_final_norm_is_the_one_whose_output_the_head_reads():
    """OPT registers its final norm before its layers: registration order cannot tell which norm
    is final, one forward pass can (with or without LoRA, the training mode left as it was). A
    model whose head reads no norm (OPT-350m: do_layer_norm_before=False) is a one-line error."""
    model = tiny_opt()
    decoder = model.get_decoder()
    order = [name for name, _ in decoder.named_children()]
    assert order.index("final_layer_norm") < order.index("layers")
    model.train()
    assert architecture.final_norm(model) is decoder.final_layer_norm
    assert all(m.training for m in model.modules())
    model.eval()
    ids = torch.tensor([[5, 9, 11, 3]])
    caught = []
    handle = architecture.layer(model, 1).register_forward_hook(
        lambda m, a, out: caught.append(out[0] if isinstance(out, tuple) else out))
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    handle.remove()
    with torch.no_grad():
        normed = architecture.final_norm(model)(caught[0])
        assert torch.allclose(normed, out.hidden_states[-1], atol=1e-6)
        assert torch.allclose(architecture.head_logits(model, normed), out.logits, atol=1e-5)
    lora = add_lora(tiny_opt(), Lora(r=4, alpha=8))
    assert architecture.final_norm(lora) is lora.get_base_model().get_decoder().final_layer_norm
    with pytest.raises(UserError, match="OPTForCausalLM: cannot find a final norm whose output reaches the output head"):
        architecture.final_norm(tiny_opt(do_layer_norm_before=False))


def expected_linear_names(model) -> set[str]:
    """The projections of the blocks: every Linear or Conv1D module inside the layer list."""
    stack = architecture.layer_stack(model)[0]
    return {n for n, m in model.named_modules()
            if type(m).__name__ in ("Linear", "Conv1D") and n.startswith(stack + ".")}


def test_round_to_nearest_quantizes_every_projection(family):
    model = fresh(family)
    n = quantize_linear_weights(model, bits=4, group_size=16)
    names = expected_linear_names(model)
    assert n == len(names)
    for name in names:
        module = dict(model.named_modules())[name]
        w = architecture.linear_weight(module).detach()
        groups = w.reshape(w.shape[0], -1, 16)
        # symmetric 4 bits: at most 15 levels in every group
        assert max(len(torch.unique(g)) for g in groups.reshape(-1, 16)[:50]) <= 15


@pytest.mark.skipif(bnb_unavailable_reason("cpu") is not None, reason="bitsandbytes cannot run on this CPU")
def test_bitsandbytes_nf4_loads_and_answers(family, family_tok):
    model = fresh(family)
    q = bnb_quantized(model, "bnb_nf4", "cpu")
    batch = views(family_tok)["forget"]
    full, quant = answer_logp(model, batch), answer_logp(q, batch)
    assert math.isfinite(quant) and abs(quant - full) < 0.2 * abs(full)


def test_relearn_and_prompt_attacks_run(family, family_tok, tmp_path):
    model = fresh(family)
    relearned, report = relearn(model, family_tok, FORGET, Model(max_length=64, lora=Lora(r=4, alpha=8)),
                                Relearn(steps=2, batch_size=2), hardware.resolve(Hardware()), tmp_path, seed=0)
    assert report["steps"] == 2
    cfg = Attack(samples=2, max_new_tokens=4, paraphrases=1, priming=1)
    probes = build_probes(family_tok, FORGET, POOL, RETAIN, cfg, seed=0)
    rows = run_probes(relearned, family_tok, probes, cfg, Eval(max_new_tokens=4), seed=0, label="unlearned")
    assert {r["attack"] for r in rows} == set(cfg.attacks)


@pytest.mark.parametrize("name", ["qwen2", "gpt2"])
def test_base_model_without_chat_template_uses_the_plain_format(name, tmp_path):
    """A base checkpoint (Qwen2-1.5B, GPT-2) ships no chat template: prepare_model records the plain
    format; the answer mask, the stop at eos and the fluency score follow it."""
    raw = tmp_path / "raw"
    prepare_base(Model(source="tiny-random", tiny=Tiny(layers=2, hidden=32, architecture=name)), raw, 0)
    for f in raw.glob("*.jinja"):
        f.unlink()
    config = raw / "tokenizer_config.json"
    import json
    data = json.loads(config.read_text())
    data.pop("chat_template", None)
    config.write_text(json.dumps(data))
    base = tmp_path / "base"
    prepare_base(Model(source=str(raw), system_prompt=None), base, 0)
    assert read_meta(base)["prompt_format"] == "plain"
    tok = load_tokenizer(base)
    q, a = "Where was Fenna Kilbride born?", "Bergen"
    enc = encode_qa(tok, q, a, 64)
    prompt = f"Question: {q}\nAnswer: "
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    assert enc["input_ids"][:len(p_ids)] == p_ids
    answer = [t for t in enc["labels"] if t != -100]
    assert answer == tok(a, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    # fluency (answer_nlls): the mean NLL of the answer and eos after the plain prompt, by hand
    torch.manual_seed(0)
    model = load_model(base)
    ids = torch.tensor([p_ids + answer])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), -1)
    by_hand = -torch.stack([logp[len(p_ids) - 1 + i, t] for i, t in enumerate(answer)]).mean().item()
    assert answer_nlls(model, tok, [(q, a)])[0] == pytest.approx(by_hand, abs=1e-4)
    # learn the one answer, then greedy generation says it and stops at eos
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    labels = torch.tensor([enc["labels"]])
    for _ in range(60):
        loss = model(input_ids=torch.tensor([enc["input_ids"]]), labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert generate_answers(model, tok, [q], max_new_tokens=8) == [a]
