"""Where a causal LM keeps what this project reaches inside: its decoder layers, final norm,
output head, the MLP of a layer, the linear layers (Conv1D included), the attention kernel and
the key/value cache keyword.

Everything is found through the model's own accessors (`get_decoder`, `get_output_embeddings`,
`get_input_embeddings`) and its config (`num_hidden_layers`), never by one family's module
paths: Llama keeps its blocks in `model.layers` and its norm as `norm`, GPT-2 in `transformer.h`
and `ln_f`, GPT-NeoX in `gpt_neox.layers` and `final_layer_norm`. A family transformers knows
needs no code here; a model this module cannot read gets one line naming its type and what is
missing.
"""
from __future__ import annotations

import functools
import inspect
import re

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


def final_norm(model):
    """The norm applied after the last block: the decoder's first normalisation child registered
    after its block list (norm, ln_f, final_layer_norm ...)."""
    _, blocks = layer_stack(model)
    seen = False
    for _, child in decoder(model).named_children():
        if child is blocks:
            seen = True
        elif seen and "norm" in type(child).__name__.lower():
            return child
    raise _missing(model, "a final norm after the decoder layers")


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


def mlp_name(model, index: int = 0) -> str:
    """The attribute name of a block's feed-forward sub-module."""
    block = layer(model, index)
    for name in MLP_NAMES:
        if isinstance(getattr(block, name, None), torch.nn.Module):
            return name
    raise _missing(model, f"the MLP of decoder layer {index} (a child named {' or '.join(MLP_NAMES)})")


def mlp(model, index: int):
    return getattr(layer(model, index), mlp_name(model, index))


def mlp_pattern(model, indices: list[int]) -> str:
    """A regular expression over parameter names that matches the MLP weights of the given
    layers (and their LoRA adapters), for this model with or without a PEFT wrapper."""
    for i in indices:
        layer(model, i)
    stack = layer_stack(model)[0]
    # PEFT prefixes the names ("base_model.model."): anchor on the stack's own trailing path.
    tail = stack.split("base_model.model.", 1)[-1]
    layers = "|".join(str(i) for i in indices)
    return rf"(^|\.){re.escape(tail)}\.({layers})\.{re.escape(mlp_name(model, indices[0]))}\."


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
