"""bitsandbytes quantization (LLM.int8, NF4) against the formats' own definitions: what it
converts, and how far each weight may move. Runs on CPU (bitsandbytes >= 0.48)."""
import copy
import sys

import pytest
import torch

from unlearn_lab.errors import UserError
from unlearn_lab.evaluation.questions import answer_nlls
from unlearn_lab.models.loading import load_model, prepare_base
from unlearn_lab.robustness.quantization import (
    BNB_SCHEMES, bnb_4bit_shape_reason, bnb_quantized, bnb_unavailable_reason, scheme_names,
)
from unlearn_lab.settings import Model, Quantize, Tiny

from .conftest import qa_record

needs_bnb = pytest.mark.skipif(bnb_unavailable_reason("cpu") is not None,
                               reason=f"bitsandbytes on CPU: {bnb_unavailable_reason('cpu')}")

# NF4 code values, QLoRA (Dettmers et al. 2023, arXiv 2305.14314), appendix E: quantiles of N(0, 1)
# rescaled to [-1, 1], with an exact 0.
NF4 = torch.tensor([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                    0.7229568362236023, 1.0])
NF4_HALF_GAP = float((NF4[1:] - NF4[:-1]).max()) / 2  # (-0.696 - -1) / 2 = 0.1519
BLOCK = 64


@pytest.fixture(scope="module")
def tiny64_dir(tmp_path_factory):
    """A tiny random model whose layers are 64 or 128 wide: bitsandbytes 4-bit on CPU needs input
    widths that are multiples of its block (see test_narrow_layers_are_refused_on_cpu)."""
    out = tmp_path_factory.mktemp("tiny64")
    prepare_base(Model(source="tiny-random", tiny=Tiny(layers=2, hidden=64)), out, seed=0)
    return out


@pytest.fixture()
def tiny64(tiny64_dir):
    return load_model(tiny64_dir)


def _blocks(flat: torch.Tensor) -> torch.Tensor:
    """A flat weight as rows of BLOCK, the last one padded with zeros (which change no absmax)."""
    pad = (-flat.numel()) % BLOCK
    return torch.nn.functional.pad(flat, (0, pad)).reshape(-1, BLOCK)


def _nf4_error_within_bound(original: torch.Tensor, deq: torch.Tensor) -> None:
    w, d = _blocks(original.float().flatten()), _blocks(deq.float().flatten())
    absmax = w.abs().amax(-1, keepdim=True)
    assert ((w - d).abs() <= absmax * NF4_HALF_GAP + 1e-6).all()
    # every value is a code value times its block's absmax
    codes = d / absmax.clamp(min=1e-12)
    assert (codes.unsqueeze(-1) - NF4).abs().amin(-1).max() < 1e-5


def test_nf4_code_table_is_bitsandbytes_own():
    from bitsandbytes.functional import get_4bit_type

    assert torch.allclose(get_4bit_type("nf4", device="cpu").float(), NF4, atol=1e-7)
    assert NF4_HALF_GAP == pytest.approx((1.0 - 0.6961928009986877) / 2)


@needs_bnb
def test_nf4_round_trip_of_a_constructed_weight_meets_the_bound():
    import bitsandbytes.functional as F

    torch.manual_seed(0)
    # blocks of very different scales, an outlier, and values sitting between two code values
    w = torch.randn(8, 128) * torch.logspace(-3, 1, 8).unsqueeze(1)
    w[3, 5] = 40.0
    w[0, :BLOCK] = torch.linspace(-1, 1, BLOCK) * 1e-3
    q, state = F.quantize_4bit(w, blocksize=BLOCK, quant_type="nf4")
    deq = F.dequantize_4bit(q, state)
    assert state.blocksize == BLOCK and state.absmax.numel() == w.numel() // BLOCK
    assert torch.allclose(state.absmax.float(), _blocks(w.flatten()).abs().amax(-1))
    _nf4_error_within_bound(w, deq)
    # the bound is reached nearly: a value halfway between -1 and the next code value
    worst = torch.zeros(1, BLOCK)
    worst[0, 0], worst[0, 1] = 1.0, -(1.0 + 0.6961928009986877) / 2 + 1e-4
    d = F.dequantize_4bit(*F.quantize_4bit(worst, blocksize=BLOCK, quant_type="nf4"))
    assert (worst - d).abs().max() == pytest.approx(NF4_HALF_GAP, abs=2e-4)


@needs_bnb
def test_int8_round_trip_is_row_wise_absmax_within_half_a_step():
    import bitsandbytes.functional as F

    torch.manual_seed(1)
    # fp16-exact values, so the only error is int8 rounding (bnb casts weights to fp16 first)
    w = (torch.randn(16, 96) * torch.logspace(-2, 1, 16).unsqueeze(1)).half()
    cb, scb, outliers = F.int8_vectorwise_quant(w.clone())
    assert cb.dtype == torch.int8 and outliers is None
    # LLM.int8 weights: one scale per output row, its absmax; q = round(127 w / absmax)
    assert torch.equal(scb, w.float().abs().amax(1))
    deq = cb.float() * scb.unsqueeze(1) / 127
    assert ((w.float() - deq).abs() <= scb.unsqueeze(1) / 127 / 2 * (1 + 1e-5)).all()
    assert torch.equal(cb.abs().amax(1), torch.full((16,), 127, dtype=torch.int8))


def _linear_names(model) -> set[str]:
    return {name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and name != "lm_head"}


@needs_bnb
@pytest.mark.parametrize("scheme", ["bnb_nf4", "bnb_int8"])
def test_bnb_converts_exactly_the_linear_layers(tiny64, scheme):
    """bitsandbytes (through transformers) converts every nn.Linear of the decoder layers; the
    output head (tied to the embeddings), the embeddings and the RMS norms keep their float
    weights, bit for bit."""
    import bitsandbytes as bnb

    original = copy.deepcopy(tiny64)
    q = bnb_quantized(tiny64, scheme, "cpu")
    kind = bnb.nn.Linear4bit if scheme == "bnb_nf4" else bnb.nn.Linear8bitLt
    converted = {name for name, m in q.named_modules() if isinstance(m, kind)}
    assert converted == _linear_names(original) and len(converted) == 14
    assert not isinstance(q.lm_head, kind)
    before = dict(original.named_parameters(remove_duplicate=False))
    kept = {k: v for k, v in q.named_parameters(remove_duplicate=False)
            if k.rsplit(".", 1)[0] not in converted}
    assert {k.rsplit(".", 1)[0] for k in kept} >= {"model.embed_tokens", "model.norm", "lm_head",
                                                    "model.layers.0.input_layernorm"}
    for name, value in kept.items():
        assert value.dtype == torch.float32 and torch.equal(value, before[name]), name
    for name in converted:
        w, old = q.get_submodule(name).weight, original.get_submodule(name).weight.detach()
        if scheme == "bnb_nf4":
            _nf4_error_within_bound(old, bnb.functional.dequantize_4bit(w.data, w.quant_state).reshape(old.shape))
        else:
            deq = w.data.float() * w.SCB.unsqueeze(1) / 127
            # half an int8 step of the row, plus the cast of the weight to fp16 (half an fp16 ulp)
            bound = w.SCB.unsqueeze(1) / 254 * (1 + 1e-5) + old.abs() * 2 ** -11
            assert ((old - deq).abs() <= bound).all(), name


@needs_bnb
def test_nf4_model_computes_with_its_dequantized_weights(tiny64, tok):
    """The NF4 model's answer NLLs are those of the float model carrying the dequantized NF4
    weights (compute in float32 on CPU), and differ from the original model's."""
    import bitsandbytes as bnb

    pairs = [(r["question"], r["answer"]) for r in (qa_record(i) for i in range(3))]
    reference = copy.deepcopy(tiny64)
    q = bnb_quantized(copy.deepcopy(tiny64), "bnb_nf4", "cpu")
    with torch.no_grad():
        for name in _linear_names(reference):
            w = q.get_submodule(name).weight
            reference.get_submodule(name).weight.copy_(
                bnb.functional.dequantize_4bit(w.data, w.quant_state).reshape(w.quant_state.shape))
    got, want, orig = answer_nlls(q, tok, pairs), answer_nlls(reference, tok, pairs), answer_nlls(tiny64, tok, pairs)
    assert got == pytest.approx(want, abs=1e-3)
    assert abs(got - orig).max() > 1e-4


def test_scheme_names_take_bnb_whenever_it_supports_the_device(monkeypatch):
    import bitsandbytes

    schemes, reason = scheme_names(Quantize(bits=[8, 4], bnb="auto"), "cpu")
    if reason is None:
        assert schemes == ["int8", "int4", *BNB_SCHEMES]
    monkeypatch.setattr(bitsandbytes, "supported_torch_devices", {"cuda"}, raising=False)
    schemes, reason = scheme_names(Quantize(bits=[8, 4], bnb="auto"), "cpu")
    assert schemes == ["int8", "int4"] and "does not support the cpu device" in reason
    with pytest.raises(UserError, match="quantize.bnb is true but bitsandbytes .* does not support the cpu"):
        scheme_names(Quantize(bits=[4], bnb=True), "cpu")
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # an import that fails
    assert "bitsandbytes does not import" in scheme_names(Quantize(bnb="auto"), "cpu")[1]
    assert scheme_names(Quantize(bnb=False), "cpu") == (["int4"], "quantize.bnb is false")


def test_narrow_layers_are_refused_on_cpu(tiny_model, tiny64):
    # bitsandbytes 0.50.2 on CPU: a [32, 32] weight's NF4 round trip errs by most of its block's absmax
    assert "model.layers.0.self_attn.q_proj has 32" in bnb_4bit_shape_reason(tiny_model, "cpu")
    assert bnb_4bit_shape_reason(tiny64, "cpu") is None and bnb_4bit_shape_reason(tiny_model, "cuda") is None
