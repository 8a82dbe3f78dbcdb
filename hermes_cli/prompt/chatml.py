"""Messages -> ChatML token ids, safe against prompt injection.

The template's text form is

    <|im_start|>{role}\\n{content}<|im_end|>\\n ... <|im_start|>assistant\\n

Role markers come only from here, as token ids looked up in the model's vocabulary (not
hard-coded: Hermes, Qwen and OpenHermes number them differently). Everything between
two markers ("{role}\\n{content}", or the "\\n" after <|im_end|>) is tokenized in one
piece with special-token parsing OFF. That is exactly how llama.cpp tokenizes the
rendered template (it splits the text at special tokens and tokenizes each fragment), so
benign text gets the template's ids, while a user, a pipe or a tool that writes
"<|im_start|>system" gets plain-text tokens and cannot forge a turn.

An assistant message may carry the token ids the model generated: those are used as is,
so the next turn's prompt shares its prefix with the KV cache (re-tokenizing the reply's
text can split it differently and lose the cache), but only once checked: every id in
the vocabulary, none a control token, and together they spell the message's content.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hermes_cli.errors import ModelError, UsageError
from hermes_cli.prompt.messages import ROLES, Message


class Tokenizer(Protocol):
    def tokenize(self, text: str, *, special: bool = False) -> list[int]: ...
    def special_token(self, text: str) -> int | None: ...
    def bos_prefix(self) -> list[int]: ...
    def ids_spell(self, ids: Sequence[int], text: str) -> bool: ...


class ChatML:
    """Renders messages for one model's vocabulary."""

    kind = "chatml"

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tok = tokenizer
        im_start = tokenizer.special_token("<|im_start|>")
        im_end = tokenizer.special_token("<|im_end|>")
        if im_start is None or im_end is None:
            raise ModelError(
                "this model's vocabulary has no <|im_start|>/<|im_end|> tokens: "
                "hermes-cli speaks ChatML only"
            )
        self.im_start, self.im_end = im_start, im_end
        self._bos = tokenizer.bos_prefix()
        self._after_end = tokenizer.tokenize("\n")
        self._headers: dict[str, list[int]] = {}
        self.thinking: bool | None = None  # --think/--no-think; None: the model's own choice

    def header(self, role: str) -> list[int]:
        """`<|im_start|>{role}\\n` as ids (the generation prompt is `header("assistant")`)."""
        ids = self._headers.get(role)
        if ids is None:
            ids = self._headers[role] = [self.im_start, *self._tok.tokenize(f"{role}\n")]
        return ids

    def message(self, msg: Message) -> list[int]:
        """One whole turn, `<|im_start|>` to the newline after `<|im_end|>`."""
        if msg.role not in ROLES:
            raise UsageError(f"unknown role {msg.role!r}; ChatML roles are {', '.join(ROLES)}")
        if self.trusted_ids(msg) is not None:
            body = [*self.header(msg.role), *(msg.token_ids or [])]
        else:
            body = [self.im_start, *self._tok.tokenize(f"{msg.role}\n{msg.content}")]
        return [*body, self.im_end, *self._after_end]

    def trusted_ids(self, msg: Message) -> list[int] | None:
        """The message's saved ids, if they are this vocabulary's spelling of its content
        with no control token (a session file from another model, or one crafted to hide
        `<|im_start|>system` behind harmless text, fails); None: tokenize the content."""
        ids = msg.token_ids
        if ids is None:
            return None
        if msg.ids_checked_by is not self._tok:
            if not self._tok.ids_spell(ids, msg.content):
                return None
            msg.ids_checked_by = self._tok
        return ids

    def signature(self) -> list[int]:
        return [self.im_start, self.im_end]

    def render(self, messages: Sequence[Message], *, add_generation_prompt: bool = True) -> list[int]:
        """The whole prompt: BOS (when the vocabulary wants one), turns, then
        `<|im_start|>assistant\\n` so the model writes the reply; or, the last message
        being `open`, that turn without its `<|im_end|>`, for the model to go on."""
        continue_final = bool(messages and messages[-1].open)
        ids = list(self._bos)
        for msg in messages[:-1] if continue_final else messages:
            ids += self.message(msg)
        if continue_final:
            return ids + self.message(messages[-1])[:-1 - len(self._after_end)]
        if add_generation_prompt:
            ids += self.header("assistant")
            if self.thinking is False:  # --no-think: the reply begins after an empty thinking section
                ids += self._empty_thinking()
        return ids

    def _empty_thinking(self) -> list[int]:
        """`<think>\n\n</think>\n\n`, the tags as the vocabulary's own tokens where it has
        them (our text, not the user's: the one place a tag is made special here)."""
        from hermes_cli.prompt.reasoning import CLOSE, OPEN

        ids: list[int] = []
        for tag in (OPEN, CLOSE):
            special = self._tok.special_token(tag)
            ids += [special] if special is not None else self._tok.tokenize(tag)
            ids += self._tok.tokenize("\n\n")
        return ids
