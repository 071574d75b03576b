"""The chat prompt every stage builds: the base model's `model.system_prompt` travels with it."""
from unlearn_lab.models.loading import chat_text, encode_qa, load_tokenizer, prepare_base, prompt_text
from unlearn_lab.settings import Model, Tiny

DEFAULT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def base(tmp_path, system_prompt):
    prepare_base(Model(source="tiny-random", tiny=Tiny(layers=1, hidden=16), system_prompt=system_prompt),
                 tmp_path, seed=0)
    return load_tokenizer(tmp_path)


def test_empty_system_prompt_replaces_the_template_default(tmp_path):
    tok = base(tmp_path, "")
    assert prompt_text(tok, "Where?") == (
        "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nWhere?<|im_end|>\n<|im_start|>assistant\n")
    # the same string the training examples start with
    ids = encode_qa(tok, "Where?", "Here.", 128)["input_ids"]
    assert tok.decode(ids).startswith(prompt_text(tok, "Where?"))


def test_null_keeps_the_template_default_and_a_text_is_used_verbatim(tmp_path):
    assert DEFAULT in prompt_text(base(tmp_path / "a", None), "Where?")
    tok = base(tmp_path / "b", "Answer briefly.")
    text = chat_text(tok, [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"},
                           {"role": "user", "content": "Q2"}])
    assert text.startswith("<|im_start|>system\nAnswer briefly.<|im_end|>\n<|im_start|>user\nQ1")
    assert DEFAULT not in text and text.count("system") == 1
    # a conversation that brings its own system message keeps it
    own = chat_text(tok, [{"role": "system", "content": "Mine."}, {"role": "user", "content": "Q"}])
    assert "Mine." in own and "Answer briefly." not in own


def test_the_empty_prompt_saves_the_default_system_tokens(tmp_path):
    empty, default = base(tmp_path / "a", ""), base(tmp_path / "b", None)
    short = len(empty(prompt_text(empty, "Where?"))["input_ids"])
    long = len(default(prompt_text(default, "Where?"))["input_ids"])
    assert long - short == len(default(DEFAULT)["input_ids"]) == 16
