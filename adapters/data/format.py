"""The chat text a model trains on.

If the tokenizer carries a ``chat_template`` (any real chat model, and evo's demo tokenizer),
``render`` is ``tokenizer.apply_chat_template(messages, tokenize=False)``. Otherwise evo's
plain template, the one the demo tokenizer's ``CHAT_TEMPLATE`` reproduces exactly::

    <|user|>What does the blick eat?<|end|><|assistant|>The blick eats plums.<|end|>

that is ``<|ROLE|>CONTENT<|end|>`` for every message, nothing between them, and with
``add_generation_prompt`` a final ``<|assistant|>`` (the prompt a model completes). The text
holds no BOS: the tokenizer adds it when encoding (``add_special_tokens=True``), so a text is
never given two (a template that writes ``bos_token`` itself, as Llama 3's and Gemma's do, has
it removed when the tokenizer adds one).

A ``tool`` message (a tool's output, which the model reads as it reads the user) is rendered as
a tool turn by a template that names the tool role, and as a user turn by any other template
and by the plain one (which has no tool token): templates such as Gemma's refuse a role they
do not know, and one that silently skipped it would train on a conversation with a hole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.data.conversations import Conversation, Message

BOS = "<|bos|>"
END = "<|end|>"  # the end of a turn; the demo tokenizer's EOS
PAD = "<|pad|>"
ROLE_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
SPECIAL_TOKENS = (PAD, BOS, END, *ROLE_TOKENS.values())

# The plain template as Jinja, for tokenizers (the demo's) and for tools that need one.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def _messages(conversation: Conversation | Sequence[Message]) -> Sequence[Message]:
    return conversation.messages if isinstance(conversation, Conversation) else conversation


def _role(role: str, template: str | None) -> str:
    """The role a template renders a message of ``role`` as (see the module doc)."""
    if role == "tool" and not (template and "tool" in template):
        return "user"
    return role


def render_plain(conversation: Conversation | Sequence[Message], *, add_generation_prompt: bool = False) -> str:
    text = "".join(f"{ROLE_TOKENS[_role(m.role, None)]}{m.content}{END}" for m in _messages(conversation))
    return text + (ROLE_TOKENS["assistant"] if add_generation_prompt else "")


def _without_bos(text: str, tokenizer: Any) -> str:
    """Real templates (Llama 3, Gemma) start with ``bos_token``; the tokenizer adds BOS when
    encoding too, so the template's is dropped: a text never carries two."""
    bos = getattr(tokenizer, "bos_token", None)
    if bos and text.startswith(bos):
        ids = tokenizer("", add_special_tokens=True)["input_ids"]
        if ids[:1] == [tokenizer.bos_token_id]:
            return text[len(bos):]
    return text


def render(
    conversation: Conversation | Sequence[Message],
    tokenizer: Any = None,
    *,
    add_generation_prompt: bool = False,
) -> str:
    """The conversation as the text a model trains on (see the module doc)."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        template = str(tokenizer.chat_template)
        messages = [{"role": _role(m.role, template), "content": m.content} for m in _messages(conversation)]
        text = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
        assert isinstance(text, str)
        return _without_bos(text, tokenizer)
    return render_plain(conversation, add_generation_prompt=add_generation_prompt)
