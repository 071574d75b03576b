"""One typed section per block of params.yaml; every default is declared here once, with its help.

`methods.<name>` knobs live next to each loss in methods/<name>.py. Nothing here imports torch or
transformers, so every stage can check the whole file in milliseconds before it starts work.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from .base import Section

# transformers' SchedulerType values that need no extra arguments (tests/test_settings.py checks
# them against the installed transformers; importing it here would cost every stage seconds).
SCHEDULERS = ("constant", "constant_with_warmup", "cosine", "cosine_with_restarts", "inverse_sqrt",
              "linear", "polynomial")
Scheduler = Literal[SCHEDULERS]
# transformers' OptimizerNames that run without extra packages or arguments here (checked likewise).
OPTIMIZERS = ("auto", "adamw_torch", "adamw_torch_fused", "adafactor", "sgd", "adagrad", "rmsprop",
              "adamw_8bit", "adamw_bnb_8bit", "paged_adamw_8bit", "paged_adamw_32bit", "lion_8bit",
              "lion_32bit", "ademamix", "schedule_free_adamw", "schedule_free_sgd")
Auto = Literal["auto"]
MODEL_SOURCES = ("embedded", "tiny-random")
# A hub id is `owner/name`; a bare word is more likely a typo of embedded than a legacy id.
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")

# Upper bounds. Each is far above any real run of this project and low enough that a slipped
# digit or an exponent typo (a billion bootstrap resamples, a learning rate of 1e3) is refused
# in milliseconds instead of running for days or diverging at the first step. Every float is
# finite besides (base.Section). tests/test_settings.py checks that every number has a bound.
MAX_SEED = 2**32 - 1          # numpy's global seeding (transformers.set_seed) refuses larger seeds
MAX_LR = 1.0                  # Adam-type and plain SGD alike diverge on a transformer far below 1
MAX_TOKENS = 131072           # the longest context window of released models (128k tokens)
MAX_BATCH = 4096              # examples per step or per forward; a GPU batch of LM sequences is far smaller
MAX_EPOCHS = 1000             # passes over a set; unlearning and fine-tuning here use 1 to 10
MAX_STEPS = 1_000_000         # optimizer or warm-up steps
MAX_COUNT = 1_000_000         # records, people, facts or questions drawn or sampled
MAX_CHOICES = 100             # answers per question (wrong answers, distractors, samples): same-field pools are smaller
MAX_CHARS = 100_000_000       # characters of one text: a whole book is a few million
MAX_BOOTSTRAP = 100_000       # resamples per interval: at 10,000 the 95% bounds' Monte Carlo error is ~0.1% of their width
MAX_SCALE = 1e6               # unbounded-by-nature positive floats (a guard, a clipping norm, an inverse penalty)


def _regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from None
    return value


class Lora(Section):
    r: int = Field(16, ge=1, le=4096, description="adapter rank")
    alpha: int = Field(32, ge=1, le=65536, description="LoRA scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapter input")
    target_modules: Union[str, list[str]] = Field("all-linear", description="PEFT target_modules")


class Tiny(Section):
    layers: int = Field(2, ge=1, le=64, description="decoder layers of the tiny random model (tests)")
    hidden: int = Field(64, ge=4, le=8192, multiple_of=4, description="hidden width (4 attention heads)")
    architecture: str = Field("llama", pattern=r"^[a-z0-9_]+$",
                              description="transformers model_type of the tiny random model: llama, qwen2, phi3, gemma2, gpt2, gpt_neox ...")


class Model(Section):
    source: str = Field("embedded", description="embedded | tiny-random | a hub id owner/name | a local folder")
    revision: str = Field("main", min_length=1, description="branch, tag or commit of a hub id source (pin a commit to reproduce); unused otherwise")
    trust_remote_code: bool = Field(False, description="run the model folder's own Python code (only `true` does)")
    max_length: int = Field(128, ge=8, le=MAX_TOKENS, description="longest tokenized question + answer")
    system_prompt: Optional[str] = Field("", description="system message of every chat prompt; null: the chat template's own default")
    lora: Optional[Lora] = Field(default_factory=Lora, description="LoRA adapters; null: full fine-tuning")
    tiny: Tiny = Field(default_factory=Tiny, description="size of the tiny-random model")

    @field_validator("source")
    @classmethod
    def _source(cls, source: str) -> str:
        if not source.strip():
            raise ValueError("must be embedded, tiny-random, a local folder or a hub id owner/name")
        if source in MODEL_SOURCES or Path(source).expanduser().is_dir():
            return source
        if source.startswith((".", "/", "~")) or Path(source).expanduser().exists():
            raise ValueError("this local folder does not exist (or is not a folder)")
        if not HUB_ID.match(source):
            raise ValueError(f"not {', '.join(MODEL_SOURCES)}, an existing local folder, or a hub id like owner/name")
        return source


class Import(Section):
    format: Literal["auto", "csv", "jsonl", "tofu", "table"] = Field("auto", description="file format; auto: per file")
    forget: Optional[str] = Field(None, min_length=1, description="forget file (required with benchmark: import)")
    retain: Optional[str] = Field(None, min_length=1, description="retain file, or rows with split: retain in the forget file")
    holdout: Optional[str] = Field(None, min_length=1, description="never-trained questions (membership inference)")
    world: Optional[str] = Field(None, min_length=1, description="utility questions; null: the shipped world facts")
    max_chars: int = Field(2000, ge=1, le=MAX_CHARS, description="longest question or answer, in characters")
    on_long: Literal["truncate", "reject"] = Field("truncate", description="what to do with a longer text")


class Documents(Section):
    versions: int = Field(2, ge=1, le=3, description="paraphrased versions of each synthetic document (biography, news report)")
    forget: Optional[str] = Field(None, min_length=1, description="your forget documents: a folder of .txt files, a .txt file or JSON lines with `text`")
    retain: Optional[str] = Field(None, min_length=1, description="your retain documents (same forms); required with `forget`")
    holdout: Optional[str] = Field(None, min_length=1, description="never-trained documents (membership inference)")
    max_chars: int = Field(200000, ge=1, le=MAX_CHARS, description="longest document, in characters")


class Data(Section):
    benchmark: Literal["synthetic", "world", "import", "documents"] = Field(
        "synthetic", description="where the facts come from; documents: forget and retain texts, probed by their facts")
    split: Literal["entity", "incident"] = Field("entity", description="forget whole people, or one fact per person")
    people: int = Field(10, ge=1, le=MAX_COUNT, description="synthetic people")
    holdout_people: int = Field(5, ge=0, le=MAX_COUNT, description="synthetic people never trained on")
    forget_fraction: float = Field(0.5, gt=0, lt=1, description="share of people (or incidents) forgotten")
    world_forget: Union[list[str], str] = Field(["France"], description="benchmark world: countries whose capital is forgotten")
    world_eval_size: int = Field(60, ge=0, le=MAX_COUNT, description="world facts in the utility evaluation")
    world_replay: int = Field(32, ge=0, le=MAX_COUNT, description="other world facts the fine-tunes rehearse")
    random_labels_k: int = Field(3, ge=1, le=MAX_CHOICES, description="wrong answers per forget question (random_labels stage)")
    import_: Import = Field(default_factory=Import, alias="import", description="bring your own data")
    documents: Documents = Field(default_factory=Documents, description="benchmark documents: synthetic versions, or your own texts")

    @field_validator("world_forget")
    @classmethod
    def _countries(cls, value):
        value = [value] if isinstance(value, str) else value
        if not value or not all(c.strip() for c in value):
            raise ValueError("must be a non-empty list of country names")
        return value

    @model_validator(mode="after")
    def _import_needs_forget(self):  # and no file named that the chosen benchmark would not read
        if self.benchmark == "import" and not self.import_.forget:
            raise ValueError("data.import.forget: a forget file is required with benchmark: import")
        if self.benchmark == "documents" and self.split != "entity":
            raise ValueError("data.split: benchmark documents forgets whole people's documents; "
                             "split: incident would keep a forgotten fact in every retained document")
        docs = self.documents
        if docs.forget and not docs.retain:
            raise ValueError("data.documents.retain: your forget documents need retain documents")
        for name in ("retain", "holdout"):
            if getattr(docs, name) and not docs.forget:
                raise ValueError(f"data.documents.{name}: documents are read only together with your forget "
                                 "documents; set data.documents.forget too (without it the synthetic documents are used)")
        if self.benchmark == "documents" and not docs.forget:
            # The synthetic documents come with their own questions: a question file here would be ignored.
            for name in ("forget", "retain", "holdout", "world"):
                if getattr(self.import_, name):
                    raise ValueError(f"data.import.{name}: benchmark documents reads question files only with "
                                     "your own documents (data.documents.forget, retain); set those, or "
                                     f"remove data.import.{name} to use the synthetic documents")
        if docs.forget and not self.import_.forget:
            raise ValueError("data.import.forget: your documents need questions about their facts "
                             "(the knowledge probes): name them in data.import.forget")
        return self


class Schedule(Section):
    """What the fine-tune and the unlearning run share."""

    epochs: int = Field(1, ge=1, le=MAX_EPOCHS, description="passes over the training set")
    batch_size: int = Field(8, ge=1, le=MAX_BATCH, description="examples per step")
    scheduler: Scheduler = Field("constant", description="transformers learning-rate schedule")
    warmup_steps: int = Field(0, ge=0, le=MAX_STEPS, description="linear warm-up steps")
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, gt=0, le=MAX_SCALE, description="gradient clipping norm")


class Finetune(Schedule):
    epochs: int = Field(8, ge=1, le=MAX_EPOCHS, description="passes over the training set")
    batch_size: int = Field(16, ge=1, le=MAX_BATCH, description="examples per step")
    lr: float = Field(1e-3, gt=0, le=MAX_LR, description="learning rate")
    checkpoint: bool = Field(True, description="resumable checkpoint each epoch in .scratch/")


class Unlearn(Schedule):
    epochs: int = Field(2, ge=1, le=MAX_EPOCHS, description="passes over the forget set")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="seed of unlearning alone: pairing, batch order, adapter initialisation")
    retain_loss_bound: float = Field(10.0, gt=0, le=MAX_SCALE, description="divergence guard: stop past this retain NLL")
    trainable: Optional[str] = Field(None, description="regex over weight names that may train (null: all)")
    epoch_eval: bool = Field(True, description="forget/retain scores before and after every epoch")
    epoch_eval_retain: int = Field(16, ge=0, le=MAX_COUNT, description="retain questions in that evaluation")
    requests: int = Field(1, ge=1, le=MAX_COUNT, description="deletion requests the forget set is cut into (whole people), applied in turn")
    request_reference: Literal["previous", "target"] = Field(
        "previous", description="reference model of a later request: the model before it | the original target")
    request_eval_size: int = Field(16, ge=0, le=MAX_COUNT, description="retain and world questions measured before and after each request; 0: all")

    _trainable = field_validator("trainable")(classmethod(lambda cls, v: _regex(v)))


class Quantize(Section):
    bits: list[int] = Field([4], description="round-to-nearest bit widths")
    group_size: int = Field(64, ge=0, le=1_048_576, description="weights per group; 0: one group per output row")
    symmetric: bool = Field(True, description="true: scale max|w|; false: min..max with a zero point")
    bnb: Union[bool, Auto] = Field("auto", description="bitsandbytes int8 / NF4 / FP4 too: auto (if it supports the device, CPU too) | true | false")
    models: list[Literal["unlearned", "target"]] = Field(["unlearned"], description="models quantized")
    retain_size: int = Field(16, ge=0, le=MAX_COUNT, description="retain facts re-scored (correlated first); 0: all")
    skip: Optional[str] = Field(None, description="regex over module names also kept in float (the head and embeddings always are)")

    @field_validator("bits")
    @classmethod
    def _bits(cls, bits):
        for b in bits:
            if not 2 <= b <= 8:
                raise ValueError(f"every bit width must be between 2 and 8, got {bits!r}")
        return bits

    @field_validator("models")
    @classmethod
    def _models(cls, models):
        if "unlearned" not in models:
            raise ValueError(f"must be [unlearned] or [unlearned, target], got {models!r}")
        return list(dict.fromkeys(models))

    _skip = field_validator("skip")(classmethod(lambda cls, v: _regex(v)))


class Represent(Section):
    batch_size: int = Field(8, ge=1, le=MAX_BATCH, description="questions per forward")
    candidates: int = Field(5, ge=1, le=MAX_CHOICES, description="wrong facts next to the true one per question")
    retain_size: int = Field(80, ge=0, le=MAX_COUNT, description="retain facts the probes train on (correlated first, then spread); 0: all")
    probe_c: float = Field(1.0, gt=0, le=MAX_SCALE, description="inverse L2 strength of the probes")
    lens_every: int = Field(3, ge=1, le=1000, description="logit lens on every n-th layer and the last; 1: every layer")


class Relearn(Section):
    data: Literal["auto", "forget", "retain_correlated", "retain"] = Field("auto", description="attack data")
    examples: int = Field(0, ge=0, le=MAX_COUNT, description="attack facts (0: all the chosen data gives)")
    steps: int = Field(10, ge=1, le=MAX_STEPS, description="fine-tuning steps of the attack")
    lr: float = Field(1e-3, gt=0, le=MAX_LR, description="attack learning rate")
    batch_size: int = Field(4, ge=1, le=MAX_BATCH, description="attack batch size")


# Prompt attacks of the attack stage (robustness/attacks.py holds each one's prompt and scoring).
ATTACKS = ("paraphrase", "fill_blank", "multiple_choice", "yes_no", "priming", "best_of_n", "jailbreak")


class Attack(Section):
    attacks: list[Literal[ATTACKS]] = Field(list(ATTACKS), min_length=1, description="prompt attacks run on every forget question")
    paraphrases: int = Field(2, ge=1, le=MAX_CHOICES, description="paraphrased questions per forget question (as many as the data has)")
    choices: int = Field(4, ge=2, le=MAX_CHOICES, description="options in a multiple-choice question: the true answer and choices-1 same-field distractors")
    priming: int = Field(3, ge=1, le=MAX_CHOICES, description="retain facts asked and answered before the question (same subject first)")
    samples: int = Field(16, ge=1, le=MAX_CHOICES * 10, description="best-of-N: answers sampled per question")
    temperature: float = Field(1.0, gt=0, le=100, description="best-of-N sampling temperature")
    max_new_tokens: int = Field(24, ge=1, le=MAX_TOKENS, description="tokens generated per answer")
    target: bool = Field(False, description="attack the target too: the ceiling, how much each attack extracts from a model that knows the facts")

    @field_validator("attacks")
    @classmethod
    def _unique(cls, attacks):
        return list(dict.fromkeys(attacks))


class Eval(Section):
    batch_size: Union[Auto, int] = Field("auto", description="questions per log-prob batch; auto: 8 on CPU, 32 on a GPU")
    gen_batch_size: Union[Auto, int] = Field("auto", description="questions per generation batch; auto: 16 on CPU, 64 on a GPU")
    max_new_tokens: int = Field(24, ge=1, le=MAX_TOKENS, description="greedy answer length")
    truth_ratio: Literal["tofu", "mean_prob"] = Field("tofu", description="truth-ratio convention")
    mink_k: float = Field(0.4, gt=0, le=1, description="Min-k% fraction of lowest-scoring tokens")
    bootstrap: int = Field(1000, ge=0, le=MAX_BOOTSTRAP, description="resamples of the questions per 95% interval; 0: none")
    retain_sample: int = Field(40, ge=0, le=MAX_COUNT, description="retain questions evaluated (correlated first, then spread over the set); 0: all")
    prefix_tokens: int = Field(32, ge=1, le=MAX_TOKENS, description="documents: verbatim memorisation prompts with this many tokens of a passage")
    continuation_tokens: int = Field(128, ge=1, le=MAX_TOKENS, description="documents: and scores the greedy continuation against the next this many")
    utility: Literal["tofu", "raw_prob"] = Field(
        "tofu", description="model utility's world-fact probability: tofu (normalised over the answer options) | raw_prob")

    @field_validator("batch_size", "gen_batch_size")
    @classmethod
    def _positive(cls, value):
        if value != "auto" and not 1 <= value <= MAX_BATCH:
            raise ValueError(f"must be auto or an integer from 1 to {MAX_BATCH}")
        return value


class Hardware(Section):
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field("auto", description="training autocast dtype")
    optim: Literal[OPTIMIZERS] = Field("auto", description="transformers optimizer name")
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2"] = Field(
        "auto", description="attention kernel; auto: sdpa where the model family supports it, else eager")
    torch_compile: Union[bool, Auto] = Field(False, description="torch.compile the model")
    group_by_length: Union[bool, Auto] = Field(False, description="batches of similar length")
    fuse_views: Union[bool, Auto] = Field("auto", description="forget and retain views in one forward")
    activation_checkpointing: bool = Field(
        False, description="recompute activations in the backward pass (less memory, slower steps)")
