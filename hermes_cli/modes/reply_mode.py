"""The one place that chooses how a reply is made: free text, JSON, or tools.

`ask`, `chat` and `batch` each describe what the user asked for as a `ReplyMode`; the
mode writes the system prompt the model was trained on and gives the reply logic.
"""

from __future__ import annotations

from dataclasses import dataclass

from hermes_cli.engine.params import SamplingParams
from hermes_cli.errors import UsageError
from hermes_cli.modes.events import Logic, text_reply
from hermes_cli.modes.json_mode import JsonMode, json_reply
from hermes_cli.modes.tools.loop import Approve, ToolOptions, tools_reply
from hermes_cli.modes.tools.protocol import system_prompt as tools_system_prompt
from hermes_cli.prompt.call_format import decided
from hermes_cli.prompt.messages import Message, with_system


def _refuse(_call: object) -> bool:
    return False


@dataclass
class ReplyMode:
    """JSON when `json` is set, tools when `tools` is, free text when neither."""

    json: JsonMode | None = None
    tools: ToolOptions | None = None

    def __post_init__(self) -> None:
        if self.json is not None and self.tools is not None:
            raise UsageError("--json/--schema and --tools do not go together")

    @property
    def name(self) -> str:
        return "json" if self.json is not None else "tools" if self.tools is not None else "text"

    def system_prompt(self, user_system: str | None) -> str | None:
        """The system prompt as sent: the Hermes JSON or tool prompt, then the user's."""
        if self.json is not None:
            return self.json.system_prompt(user_system)
        if self.tools is not None and self.tools.choice != "none" and self.tools.tools:
            return tools_system_prompt(list(self.tools.tools.values()), user_system,
                                       decided(self.tools.call_format))
        return user_system

    def messages(self, user_system: str | None, turns: list[Message]) -> list[Message]:
        system = self.system_prompt(user_system)
        return with_system(system, turns)

    def logic(self, messages: list[Message], params: SamplingParams, *,
              approve: Approve = _refuse) -> Logic:
        """The reply logic for `messages` (which already start with `system_prompt`)."""
        if self.json is not None:
            return json_reply(messages, self.json, params)
        if self.tools is not None and self.tools.tools:
            return tools_reply(messages, self.tools, params, approve=approve)
        return text_reply(messages, params)
