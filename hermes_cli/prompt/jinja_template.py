"""Any GGUF's own chat template (Llama-3, Gemma, Mistral, Phi, ...), rendered as llama.cpp
and transformers do (a sandboxed Jinja environment), without giving up the guarantee
that user, file, pipe and tool text never becomes control tokens.

Each message's content is rendered as a placeholder; the template's own text around the
placeholders is searched for control tokens (`<|start_header_id|>`, `<end_of_turn>`,
...), which become their ids; everything between two control tokens, the template's
text and the contents together, is tokenized in one piece with special parsing off.
That is how llama.cpp tokenizes a rendered template (it splits at special tokens, then
tokenizes each fragment whole), so benign text gets the same ids, while a content that
spells `<|start_header_id|>system` stays plain text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

from hermes_cli.errors import ModelError, UsageError
from hermes_cli.prompt.messages import ROLES, Message
from hermes_cli.prompt.reasoning import EMPTY as EMPTY_THINKING

_HOLE = "\x00hermes-content-{}\x00"
_HOLES = re.compile("\x00hermes-content-(\\d+)\x00")


class TemplateTokenizer(Protocol):
    def tokenize(self, text: str, *, special: bool = False) -> list[int]: ...
    def control_tokens(self) -> dict[str, int]: ...
    def bos_text(self) -> str: ...
    def eos_text(self) -> str: ...
    def ids_spell(self, ids: Sequence[int], text: str) -> bool: ...


class JinjaTemplate:
    """Renders messages through the model's own template, content tokenized as data."""

    kind = "jinja"

    def __init__(self, tokenizer: TemplateTokenizer, source: str) -> None:
        from jinja2 import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise TemplateError(message)

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        try:
            self._template = env.from_string(source)
        except TemplateError as e:
            raise ModelError(f"the model's chat template does not compile: {e}") from None
        self.thinking: bool | None = None  # --think/--no-think; None: the template's default
        # The template's own switch: Qwen3's and SmolLM3's `enable_thinking`, or a bare
        # `thinking` variable (Hermes 4's templates take `thinking=True`).
        self._switch = "enable_thinking" if "enable_thinking" in source else (
            "thinking" if re.search(r"(?<![\w.])thinking(?!\w)", source) else None)
        self._has_switch = self._switch is not None
        self._tok = tokenizer
        self.source = source
        controls = tokenizer.control_tokens()
        self._controls = controls
        names = sorted(controls, key=len, reverse=True)
        self._control_re = re.compile("|".join(map(re.escape, names))) if names else None
        self._bos, self._eos = tokenizer.bos_text(), tokenizer.eos_text()
        self._strips = self._template_strips()

    def _render_text(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        from jinja2 import TemplateError

        try:
            switch = {} if self.thinking is None or self._switch is None else {self._switch: self.thinking}
            text = str(self._template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                             bos_token=self._bos, eos_token=self._eos, **switch))
            if self.thinking is False and add_generation_prompt and not self._has_switch:
                text += EMPTY_THINKING  # a template without the switch: the empty section, as Qwen3 writes it
            return text
        except TemplateError as e:
            raise UsageError(f"the model's chat template refused these messages: {e}") from None
        except Exception as e:  # noqa: BLE001 - a template is code: one line about it
            raise UsageError(f"the model's chat template failed: {type(e).__name__}: {e}") from None

    def _template_strips(self) -> set[str]:
        """The roles whose contents the template trims (Llama-3's `| trim`), each probed
        in the smallest conversation that puts it in: ours are trimmed just for those.
        Gemma 3 trims user and model turns but puts the system prompt in as it is; trimming
        it anyway gave other ids than llama.cpp's rendering for a system prompt ending in
        whitespace."""
        probe = "  \n" + _HOLE.format(0) + " \n "
        shapes = {"user": [("user", probe)], "system": [("system", probe), ("user", "x")],
                  "assistant": [("user", "x"), ("assistant", probe)],
                  "tool": [("user", "x"), ("assistant", "y"), ("tool", probe)]}
        stripped = set()
        for role, shape in shapes.items():
            try:
                text = self._render_text([{"role": r, "content": c} for r, c in shape], False)
            except UsageError:
                continue  # a role the template refuses: folded into another turn, trimmed as that one
            if probe not in text:
                stripped.add(role)
        return stripped

    def render(self, messages: Sequence[Message], *, add_generation_prompt: bool = True) -> list[int]:
        for msg in messages:
            if msg.role not in ROLES:
                raise UsageError(f"unknown role {msg.role!r}")
        contents = [m.content.strip() if m.role in self._strips else m.content for m in messages]
        holes = [{"role": m.role, "content": _HOLE.format(i)} for i, m in enumerate(messages)]
        continue_final = bool(messages and messages[-1].open)
        add_generation_prompt = add_generation_prompt and not continue_final
        try:
            text = self._render_text(holes, add_generation_prompt)
        except UsageError:
            # Many templates know only user/assistant (and some refuse a system turn): a
            # Hermes tool turn goes as a user turn (its content is already wrapped in
            # <tool_response>), the system prompt as the start of the first user turn.
            plain = _plain_roles(holes)
            if plain == holes:
                raise
            text = self._render_text(plain, add_generation_prompt)
        if continue_final:  # the last turn left open: the text ends where its content does
            last = list(_HOLES.finditer(text))
            if last:
                text = text[:last[-1].end()]
        return self._tokenize(text, contents)

    def _tokenize(self, text: str, contents: list[str]) -> list[int]:
        ids: list[int] = []
        pending: list[str] = []  # plain text since the last control token

        def flush() -> None:
            if pending:
                ids.extend(self._tok.tokenize("".join(pending), special=False))
                pending.clear()

        pos = 0
        for hole in _HOLES.finditer(text):
            self._template_text(text[pos:hole.start()], ids, pending, flush)
            pending.append(contents[int(hole.group(1))])  # data: never searched for markers
            pos = hole.end()
        self._template_text(text[pos:], ids, pending, flush)
        flush()
        return ids

    def _template_text(self, part: str, ids: list[int], pending: list[str], flush: Any) -> None:
        if self._control_re is None:
            pending.append(part)
            return
        pos = 0
        for m in self._control_re.finditer(part):
            pending.append(part[pos:m.start()])
            flush()
            ids.append(self._controls[m.group()])
            pos = m.end()
        pending.append(part[pos:])

    def signature(self) -> str:
        import hashlib

        return hashlib.sha256(self.source.encode()).hexdigest()[:16]

    def trusted_ids(self, msg: Message) -> list[int] | None:
        """Saved ids are not spliced into a Jinja template's output: it re-renders them."""
        return None


def _plain_roles(holes: list[dict[str, str]]) -> list[dict[str, str]]:
    """The same turns with only user and assistant roles: tool turns as user turns, the
    system prompt joined to the first user turn, consecutive user turns merged."""
    out: list[dict[str, str]] = []
    system = ""
    for h in holes:
        role = "user" if h["role"] == "tool" else h["role"]
        if role == "system":
            system += h["content"] + "\n\n"
            continue
        if role == "user" and system:
            h, system = {"role": "user", "content": system + h["content"]}, ""
        if out and out[-1]["role"] == role == "user":
            out[-1] = {"role": "user", "content": out[-1]["content"] + "\n\n" + h["content"]}
        else:
            out.append({"role": role, "content": h["content"]})
    if system:
        out.insert(0, {"role": "user", "content": system.rstrip("\n")})
    return out
