"""Which prompt format a model gets: ChatML, rendered by hand, for any vocabulary that
has `<|im_start|>`/`<|im_end|>` (Hermes, Qwen, SmolLM...), since it is exact and fast;
otherwise the chat template embedded in the GGUF (prompt/jinja_template.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from hermes_cli.errors import ModelError
from hermes_cli.prompt.messages import Message


class PromptFormat(Protocol):
    """Messages to the ids a model is prompted with; content is never special."""

    kind: str
    thinking: bool | None  # a reasoning model told to think (True) or not (False); None: its default

    def render(self, messages: Sequence[Message], *, add_generation_prompt: bool = True) -> list[int]:
        """A last message that is `open` (an assistant turn, /continue) is rendered without
        its end marker and with no generation prompt, for the model to go on writing it."""
        ...

    def signature(self) -> Any:
        """What a saved KV state depends on (JSON): the markers, or the template."""
        ...


def template_for(tokenizer: Any) -> PromptFormat:
    from hermes_cli.prompt.chatml import ChatML
    from hermes_cli.prompt.jinja_template import JinjaTemplate

    if tokenizer.special_token("<|im_start|>") is not None and tokenizer.special_token("<|im_end|>") is not None:
        return ChatML(tokenizer)
    source = tokenizer.chat_template()
    if not source:
        raise ModelError("this model has neither ChatML's <|im_start|> tokens nor a chat template in "
                         "its GGUF: hermes-cli cannot know how to prompt it")
    return JinjaTemplate(tokenizer, source)
