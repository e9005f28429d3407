"""The chat text: evo's plain template, or the tokenizer's own chat template when it has one."""

from __future__ import annotations

from typing import Any

from adapters.data.conversations import Conversation, Message
from adapters.data.format import CHAT_TEMPLATE, render, render_plain

CONV = Conversation(
    id="a",
    cycle=1,
    karma=0.5,
    messages=[Message("system", "Be kind."), Message("user", "Hi?"), Message("assistant", "Hello!")],
)


def test_the_plain_template() -> None:
    assert render(CONV) == "<|system|>Be kind.<|end|><|user|>Hi?<|end|><|assistant|>Hello!<|end|>"
    prompt = render(CONV.messages[:2], add_generation_prompt=True)
    assert prompt == "<|system|>Be kind.<|end|><|user|>Hi?<|end|><|assistant|>"


class NoTemplate:
    chat_template = None


class OwnTemplate:
    chat_template = "custom"

    def apply_chat_template(self, messages: list[dict[str, str]], **kw: Any) -> str:
        assert kw == {"tokenize": False, "add_generation_prompt": True}
        return "|".join(f"{m['role']}={m['content']}" for m in messages)


def test_a_tokenizer_without_a_template_gets_the_plain_one_and_with_one_its_own() -> None:
    assert render(CONV, NoTemplate()) == render_plain(CONV)
    assert render(CONV, OwnTemplate(), add_generation_prompt=True) == "system=Be kind.|user=Hi?|assistant=Hello!"


def test_the_demo_tokenizers_template_is_the_plain_one() -> None:
    from adapters.models.demo import train_tokenizer

    tok = train_tokenizer()
    assert tok.chat_template == CHAT_TEMPLATE
    for gen in (False, True):
        assert render(CONV, tok, add_generation_prompt=gen) == render_plain(CONV, add_generation_prompt=gen)
    ids = tok(render(CONV, tok))["input_ids"]
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1  # BOS added once, by encoding
    assert tok.convert_ids_to_tokens(ids[1:2]) == ["<|system|>"]
