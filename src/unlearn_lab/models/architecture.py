"""Where a causal LM keeps what this project reaches inside: its decoder layers, final norm,
output head, the MLP of a layer, the linear layers (Conv1D included), the attention kernel and
the key/value cache keyword.

Everything is found through the model's own accessors (`get_decoder`, `get_output_embeddings`,
`get_input_embeddings`), its config (`num_hidden_layers`) and, for the final norm, one forward
pass, never by one family's module paths: Llama keeps its blocks in `model.layers` and its norm
as `norm`, GPT-2 in `transformer.h` and `ln_f`, GPT-NeoX in `gpt_neox.layers` and
`final_layer_norm`. A family transformers knows needs no code here; a model this module cannot
read gets one line naming its type and what is missing.
"""
from __future__ import annotations

import functools
import inspect
import re
import weakref

import torch

from ..errors import UserError

# Names a block's feed-forward sub-module goes by across transformers' causal LMs.
MLP_NAMES = ("mlp", "feed_forward", "ffn", "block_sparse_moe")


def _kind(model) -> str:
    return type(unwrap(model)).__name__


def _missing(model, what: str) -> UserError:
    return UserError(f"{_kind(model)}: cannot find {what} (this project reads a model through "
                     "get_decoder(), get_output_embeddings() and config.num_hidden_layers)")


def unwrap(model):
    """The transformers model under a DistributedDataParallel and/or PEFT wrapper (the model
    itself otherwise): a multi-process Trainer hands methods the DDP-wrapped model."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def text_config(model):
    config = unwrap(model).config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def num_layers(model) -> int:
    n = getattr(text_config(model), "num_hidden_layers", None)
    if not isinstance(n, int) or n < 1:
        raise _missing(model, "config.num_hidden_layers")
    return n


def decoder(model):
    """The decoder stack (embeddings, blocks, final norm) of a causal LM."""
    get = getattr(unwrap(model), "get_decoder", None)
    found = get() if callable(get) else None
    if found is None:
        raise _missing(model, "its decoder (get_decoder())")
    return found


def _qualified_names(model) -> dict[int, str]:
    return {id(module): name for name, module in model.named_modules()}


def layer_stack(model) -> tuple[str, torch.nn.ModuleList]:
    """The decoder's list of blocks and its name inside `model` (PEFT prefixes included)."""
    n = num_layers(model)
    for _, child in decoder(model).named_children():
        if isinstance(child, torch.nn.ModuleList) and len(child) == n:
            name = _qualified_names(model).get(id(child))
            if name is not None:
                return name, child
    raise _missing(model, f"a list of {n} decoder layers in its decoder")


def layer(model, index: int):
    """The `index`-th (0-based) decoder block."""
    _, blocks = layer_stack(model)
    if not 0 <= index < len(blocks):
        raise UserError(f"{_kind(model)} has {len(blocks)} decoder layers (0-{len(blocks) - 1}); "
                        f"layer {index} does not exist")
    return blocks[index]


# model -> (its final norm, how many modules the model had): PEFT wrapping modules anew re-asks.
_FINAL_NORMS: "weakref.WeakKeyDictionary[torch.nn.Module, tuple]" = weakref.WeakKeyDictionary()


def _is_norm(module) -> bool:
    return "norm" in type(module).__name__.lower()


def _same_tensor(a, b: torch.Tensor) -> bool:
    return isinstance(a, torch.Tensor) and (a is b or (
        a.shape == b.shape and torch.equal(a.detach().to(device=b.device, dtype=b.dtype), b.detach())))


def final_norm(model):
    """The norm applied after the last block: the normalisation module outside the blocks whose
    output the output head reads, found by one one-token forward pass (cached per model).
    Registration order does not tell: OPT registers `final_layer_norm` before its `layers`."""
    base = unwrap(model)
    modules = list(base.modules())
    cached, count = _FINAL_NORMS.get(base, (None, 0))
    if count == len(modules) and any(m is cached for m in modules):
        return cached
    _, blocks = layer_stack(model)
    head = output_head(model)
    skip = {id(m) for m in blocks.modules()} | {id(m) for m in head.modules()} | {id(base)}
    candidates = [m for m in modules if id(m) not in skip]
    seen: list[tuple[torch.nn.Module, object]] = []  # (module, output), in the order they finish
    head_input: list[torch.Tensor] = []

    def read_head(_module, args, kwargs):
        if not head_input:
            head_input.extend(a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor))

    handles = [head.register_forward_pre_hook(read_head, with_kwargs=True)]
    handles += [m.register_forward_hook(lambda m, _args, out: seen.append((m, out))) for m in candidates]
    modes = [(m, m.training) for m in modules]
    config = text_config(model)
    token = 1 if getattr(config, "pad_token_id", None) == 0 else 0  # not padding: an all-zero state matches anything
    try:
        base.eval()  # a dropout between the norm and the head is the identity then
        with torch.no_grad():
            base(input_ids=torch.tensor([[token]], device=base.device))
    finally:
        for h in handles:
            h.remove()
        for m, training in modes:
            m.training = training
    if head_input:
        producers = [m for m, out in seen if _same_tensor(out, head_input[0])]
        norm = next((m for m in producers if _is_norm(m)), None)
        if norm is not None:
            _FINAL_NORMS[base] = (norm, len(modules))
            return norm
        if producers:
            raise _missing(model, f"a final norm whose output reaches the output head (it reads the output "
                                  f"of a {type(producers[0]).__name__}, not of a norm)")
    raise _missing(model, "a final norm whose output reaches the output head (no module outside the "
                          "decoder layers produces what the head reads)")


def output_head(model):
    head = unwrap(model).get_output_embeddings()
    if head is None:
        raise _missing(model, "an output head (get_output_embeddings())")
    return head


def head_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """The next-token logits the model computes from its final (normed) hidden states: the
    output head, then the final soft-cap where the family has one (Gemma 2: cap tanh(z / cap))."""
    logits = output_head(model)(hidden)
    cap = getattr(text_config(model), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def lens_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """The logit lens of an intermediate layer's state: through the model's own final norm, then
    its head (`head_logits`)."""
    return head_logits(model, final_norm(model)(hidden))


def mlp_names(model, index: int = 0) -> tuple[str, ...]:
    """The attribute names of a block's feed-forward: its MLP child (`MLP_NAMES`) or, where the
    block holds the feed-forward projections itself (OPT's fc1 and fc2, beside self_attn), its
    own linear children."""
    block = layer(model, index)
    for name in MLP_NAMES:
        if isinstance(getattr(block, name, None), torch.nn.Module):
            return (name,)
    own = tuple(name for name, child in block.named_children() if is_linear(child) or is_linear(
        getattr(child, "base_layer", None)))  # (a LoRA-wrapped linear keeps it as base_layer)
    if own:
        return own
    raise _missing(model, f"the MLP of decoder layer {index} (a child named {' or '.join(MLP_NAMES)}, "
                          "or linear layers of the block itself)")


def mlp(model, index: int) -> list[torch.nn.Module]:
    """The modules of a block's feed-forward (`mlp_names`)."""
    block = layer(model, index)
    return [getattr(block, name) for name in mlp_names(model, index)]


def mlp_pattern(model, indices: list[int]) -> str:
    """A regular expression over parameter names that matches the MLP weights of the given
    layers (and their LoRA adapters), for this model with or without a PEFT wrapper."""
    for i in indices:
        layer(model, i)
    stack = layer_stack(model)[0]
    # PEFT prefixes the names ("base_model.model."): anchor on the stack's own trailing path.
    tail = stack.split("base_model.model.", 1)[-1]
    layers = "|".join(str(i) for i in indices)
    names = [re.escape(n) for n in mlp_names(model, indices[0])]
    mlps = names[0] if len(names) == 1 else f"({'|'.join(names)})"
    return rf"(^|\.){re.escape(tail)}\.({layers})\.{mlps}\."


def is_linear(module) -> bool:
    """A dense projection: torch's Linear, or transformers' Conv1D (GPT-2), whose weight is stored
    transposed (input x output)."""
    from transformers.pytorch_utils import Conv1D

    return isinstance(module, (torch.nn.Linear, Conv1D))


def in_width(module) -> int:
    """The input width of a linear layer (`is_linear`)."""
    return module.in_features if isinstance(module, torch.nn.Linear) else module.weight.shape[0]


def linear_weight(module) -> torch.Tensor:
    """The weight of a linear layer as (output, input), a view that writes through."""
    return module.weight if isinstance(module, torch.nn.Linear) else module.weight.t()


def linear_layers(model, skip: str | None = None) -> list[tuple[str, torch.nn.Module]]:
    """The model's linear layers but its output head and input embeddings (kept in full precision
    by quantized exports), and any whose name matches the regex `skip`."""
    base = unwrap(model)
    keep_out = {id(base.get_output_embeddings()), id(base.get_input_embeddings())}
    pattern = re.compile(skip) if skip else None
    return [(name, module) for name, module in model.named_modules()
            if is_linear(module) and id(module) not in keep_out and not (pattern and pattern.search(name))]


def has_conv1d(model) -> bool:
    from transformers.pytorch_utils import Conv1D

    return any(isinstance(m, Conv1D) for m in model.modules())


def attention_kwargs(requested: str | None) -> dict:
    """`from_pretrained` keywords for `hardware.attn_implementation`: `auto` (or None) lets
    transformers pick, which is sdpa where the family supports it and eager otherwise."""
    return {} if requested in (None, "auto") else {"attn_implementation": requested}


@functools.lru_cache(maxsize=None)
def _forward_takes(model_class: type, name: str) -> bool:
    return name in inspect.signature(model_class.forward).parameters


def takes_logits_to_keep(model) -> bool:
    """Whether the model's family computes the output layer on the last positions only when
    asked (`logits_to_keep`); a wrapper that hides the signature (torch.compile) counts as no."""
    return _forward_takes(type(unwrap(model)), "logits_to_keep")


def cache_kwarg(model) -> str:
    """The forward keyword that takes a key/value cache: `cache` from transformers 5.2x on,
    `past_key_values` before (removed in 5.40)."""
    params = inspect.signature(unwrap(model).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def output_cache(outputs):
    """The key/value cache a forward with `use_cache=True` returned."""
    cache = outputs.get("cache") if hasattr(outputs, "get") else None
    return cache if cache is not None else outputs["past_key_values"]
