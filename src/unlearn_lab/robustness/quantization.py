"""Weight quantization of a model, to check whether unlearning survives a low-bit export.

Unlearning that only moves weights by less than a quantization step is undone by rounding:
Zhang et al. (2024, arXiv 2410.16454) found that 4-bit quantization brought an unlearned model's
knowledge of the forget set from 21% back to 83%. Two back ends:

- `rtn`: round-to-nearest per group of `group_size` consecutive input weights of every linear
  layer, simulated in float ("fake quantization": quantize, then de-quantize), so it runs
  anywhere. `symmetric` uses a scale of max|w| / (2^(b-1) - 1) and no zero point; `asymmetric`
  maps [min, max] onto 0 .. 2^b - 1 with an integer zero point.
- `bnb`: bitsandbytes LLM.int8() (int8 per output row, absmax scaling, outlier columns kept in
  16 bits) and 4-bit NF4 / FP4 (blocks of 64 weights, absmax scaling): the formats real exports
  use. bitsandbytes >= 0.48 runs them on CPU as well as on CUDA.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from ..models import architecture
from ..errors import UserError
from ..settings import Eval, Quantize
from .. import timing
from ..timing import part


def rtn_quantize(weight: torch.Tensor, bits: int, group_size: int, symmetric: bool = True):
    """Round-to-nearest quantization of a 2-D weight, per group of `group_size` input columns.

    Returns (dequantized weight, scale per group). Symmetric: s = max|w| / (2^(b-1) - 1),
    q = clamp(round(w / s), -(2^(b-1) - 1), 2^(b-1) - 1), w' = s q; every error is at most s / 2.
    Asymmetric: s = (max - min) / (2^b - 1), z = round(-min / s), q = clamp(round(w / s) + z, 0,
    2^b - 1), w' = s (q - z); rounding z can push one end of the range out by up to s / 2, so the
    error is at most s. `group_size` <= 0 means one group per output row.
    """
    if bits < 2 or bits > 16:
        raise UserError(f"params.yaml: quantize bits must be between 2 and 16, got {bits}")
    rows, cols = weight.shape
    size = cols if group_size <= 0 else group_size
    if cols % size:
        raise UserError(f"quantize.group_size {size} does not divide a layer's input width {cols}")
    w = weight.detach().float().reshape(rows, cols // size, size)
    if symmetric:
        top = 2 ** (bits - 1) - 1
        scale = w.abs().amax(-1, keepdim=True).clamp(min=1e-12) / top
        q = torch.clamp(torch.round(w / scale), -top, top)
        deq = q * scale
    else:
        top = 2**bits - 1
        low, high = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
        scale = ((high - low) / top).clamp(min=1e-12)
        zero = torch.round(-low / scale)
        q = torch.clamp(torch.round(w / scale) + zero, 0, top)
        deq = (q - zero) * scale
    return deq.reshape(rows, cols).to(weight.dtype), scale.squeeze(-1)


@torch.no_grad()
def quantize_linear_weights(model, bits: int, group_size: int, symmetric: bool = True,
                            skip: str | None = None) -> int:
    """Replace the weight of every linear layer (Conv1D included; not the output head and input
    embeddings, which exports keep in full precision, nor names matching `skip`) by its RTN
    version, in place. Groups run along each layer's input. Returns the number of layers quantized."""
    count = 0
    for _, module in architecture.linear_layers(model, skip):
        weight = architecture.linear_weight(module)
        weight.copy_(rtn_quantize(weight, bits, group_size, symmetric)[0])
        count += 1
    if count == 0:
        raise UserError("quantize: no linear layer matched; nothing was quantized")
    return count


BNB_SCHEMES = {"bnb_int8": {"load_in_8bit": True},
               "bnb_nf4": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"},
               "bnb_fp4": {"load_in_4bit": True, "bnb_4bit_quant_type": "fp4"}}


def bnb_unavailable_reason(device: str | None = None) -> str | None:
    """Why bitsandbytes cannot quantize on `device` (default: CUDA when present, else the CPU),
    or None when it can: it must import and list the device among its supported ones (CPU
    support arrived in 0.48)."""
    kind = device or ("cuda" if torch.cuda.is_available() else "cpu")
    kind = torch.device(kind).type
    try:
        import bitsandbytes
    except ImportError as exc:
        return f"bitsandbytes does not import ({exc}); pip install 'bitsandbytes>=0.48'"
    supported = set(getattr(bitsandbytes, "supported_torch_devices", ()) or ())
    if kind not in supported:
        return (f"bitsandbytes {getattr(bitsandbytes, '__version__', '?')} does not support the {kind} device "
                f"(it supports: {', '.join(sorted(supported)) or 'none'}); CPU needs bitsandbytes >= 0.48")
    return None


def bnb_4bit_shape_reason(model, device: str) -> str | None:
    """Why bitsandbytes 4-bit cannot quantize `model` on `device`, or None: on CPU (0.50.2) its
    round trip is wrong for a layer whose input width is not a multiple of the 64-weight block
    (errors of most of the block's absmax, tests/test_bnb.py), as in the tiny test models."""
    if torch.device(device).type != "cpu":
        return None
    for name, module in architecture.linear_layers(model):
        if architecture.in_width(module) % 64:
            return (f"bitsandbytes 4-bit on CPU needs every linear layer's input width to be a multiple of 64; "
                    f"{name} has {architecture.in_width(module)}")
    return None


def bnb_quantized(model, scheme: str, device=None):
    """Reload `model`'s weights through bitsandbytes (`bnb_int8`, `bnb_nf4` or `bnb_fp4`) on
    `device` (default: CUDA when present, else the CPU).

    bitsandbytes quantizes while loading, so the merged float model is written to a scratch
    folder and read back with a BitsAndBytesConfig. transformers converts every nn.Linear but the
    output head (tied to the embeddings here); embeddings and norms keep their float weights.
    Compute runs in bfloat16 on CUDA (as bitsandbytes exports are served) and in float32 on the
    CPU, where bfloat16 matmuls are slow without AMX and the float32 activations of the RTN and
    full-precision runs keep the comparison about the weights."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    reason = bnb_unavailable_reason(target.type)
    if reason:
        raise UserError(reason)
    dtype = torch.bfloat16 if target.type == "cuda" else torch.float32
    config = BitsAndBytesConfig(**BNB_SCHEMES[scheme], bnb_4bit_compute_dtype=dtype)
    with tempfile.TemporaryDirectory(prefix="unlearn-lab-bnb-") as tmp:
        model.save_pretrained(Path(tmp), safe_serialization=True)
        quantized = AutoModelForCausalLM.from_pretrained(tmp, quantization_config=config, dtype=dtype,
                                                         device_map={"": str(target)})
    if target.type == "cpu":
        # On its first CPU forward bitsandbytes repacks 4-bit weights for an AVX512-bf16 kernel that
        # rounds each block's absmax to bfloat16 (so such a CPU would compute with other weights
        # than the format defines) and fails on layers narrower than a block; the plain path
        # dequantizes exactly, on every CPU.
        for module in quantized.modules():
            if hasattr(module, "support_avx512bf16_for_cpu"):
                module.support_avx512bf16_for_cpu = False
    quantized.eval()
    timing.watch(quantized, timing.matmul_params(model))
    return quantized


def scheme_names(cfg: Quantize, device=None) -> tuple[list[str], str | None]:
    """The schemes a quantize config asks for: `int<b>` round-to-nearest per entry of `bits`,
    and the bitsandbytes ones when `bnb` is true, or `auto` and bitsandbytes imports and supports
    `device` (default: CUDA when present, else the CPU). Returns (schemes, reason bitsandbytes was
    skipped or None)."""
    schemes = [f"int{b}" for b in cfg.bits]
    mode = cfg.bnb
    reason = bnb_unavailable_reason(device) if mode is not False else "quantize.bnb is false"
    if mode is True and reason:
        raise UserError(f"params.yaml: quantize.bnb is true but {reason}")
    if reason is None:
        schemes += list(BNB_SCHEMES)
    return schemes, reason


def quantized_model(model, scheme: str, cfg: Quantize, device=None):
    """`model` (full precision, on the CPU) quantized by `scheme`, on `device` when given."""
    if scheme in BNB_SCHEMES:
        return bnb_quantized(model, scheme, device)
    quantize_linear_weights(model, int(scheme[3:]), cfg.group_size, cfg.symmetric, cfg.skip)
    return model.to(device) if device is not None else model


def quantize_variants(loader, tok, sets: dict, eval_rows: dict, cfg: Quantize, eval_cfg: Eval, device=None,
                      documents: dict | None = None):
    """Score every (model, scheme) variant on `sets` (and the verbatim memorisation of
    `documents`, split -> documents); the unlearned ones also get the recovered fraction against
    the full-precision target and unlearned scores (from their `eval_rows`).

    `loader(name)` returns a fresh full-precision model. Keys: `<scheme>` for the unlearned model,
    `target_<scheme>` for the target."""
    from .common import add_recovery, baseline_scores, score_sets

    dev = str(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    schemes, reason = scheme_names(cfg, dev)
    models = cfg.models
    full = {m: baseline_scores(eval_rows[m], sets, f"eval/{m}.jsonl", documents) for m in ("target", "unlearned")}
    result: dict = {"schemes": schemes, "group_size": cfg.group_size,
                    "symmetric": cfg.symmetric, "full_precision": full,
                    "n": {name: len(records) for name, records in sets.items()}}
    result["n"].update({f"{split}_documents": len(docs) for split, docs in (documents or {}).items()})
    if reason:
        result["bnb_reason"] = reason
    all_rows = []
    for model_name in models:
        with part("load"):
            full_model = loader(model_name)
        narrow = bnb_4bit_shape_reason(full_model, dev) if "bnb_nf4" in schemes else None
        if narrow:
            if cfg.bnb is True:
                raise UserError(f"params.yaml: quantize.bnb is true but {narrow}")
            schemes = [s for s in schemes if s not in ("bnb_nf4", "bnb_fp4")]
            result["schemes"], result["bnb_reason"] = schemes, narrow
        # One load per model: each scheme starts again from the same full-precision weights.
        weights = {k: v.clone() for k, v in full_model.state_dict().items()}
        for scheme in schemes:
            label = scheme if model_name == "unlearned" else f"{model_name}_{scheme}"
            # The scoring's parts (generate, log-probs ...) are counted by the evaluation.
            with part(f"quantize {label}"):
                full_model.load_state_dict(weights)
                model = quantized_model(full_model.to("cpu"), scheme, cfg, device)
            scores, rows = score_sets(model, tok, sets, eval_cfg, label, documents)
            del model
            result[label] = add_recovery(scores, full["unlearned"], full["target"]) if model_name == "unlearned" \
                else scores
            all_rows.extend(rows)
    return result, all_rows


def headline(result: dict) -> dict:
    """The forget ROUGE-L fraction that int4 round-to-nearest and bitsandbytes NF4 quantization
    bring back (NF4 is the 4-bit format real exports use; RTN int4 the transparent reference)."""
    from .common import recovered_headline

    nf4 = recovered_headline("quant_nf4_recovered", result.get("bnb_nf4"), "quantize bnb_nf4")
    if "bnb_nf4" not in result and result.get("bnb_reason"):
        nf4 = {"quant_nf4_recovered_reason": f"bitsandbytes was not run: {result['bnb_reason']}"}
    return {**recovered_headline("quant_int4_recovered", result.get("int4"), "quantize int4"), **nf4}
