"""A small fake Backend for fast unit tests (as llm's tests have one): it replies from a
script, word by word, and implements the whole protocol of core/backends.py, so ask, a
chat turn and a batch line run on it exactly as on a model. The real-engine tests beside
it prove the machinery; this one proves the logic around it in milliseconds."""

from __future__ import annotations

from collections.abc import Iterator

from hermes_cli.core.backends import BackendFacts
from hermes_cli.engine.params import GenerationResult, SamplingParams
from hermes_cli.errors import UsageError
from hermes_cli.prompt.messages import Message


class FakeStream:
    def __init__(self, text: str, limit: int | None) -> None:
        self._words = text.split(" ")[:limit] if limit else text.split(" ")
        self.result: GenerationResult | None = None
        self._closed = False

    def __iter__(self) -> Iterator[str]:
        written: list[str] = []
        try:
            for i, word in enumerate(self._words):
                if self._closed:
                    break
                piece = word if i == 0 else " " + word
                written.append(piece)
                yield piece
        finally:
            done = len(written) == len(self._words)
            self.result = GenerationResult("".join(written), [], "stop" if done else "interrupted",
                                           0, 0, 0, 0.0, 0.0)

    def close(self) -> None:
        self._closed = True
        if self.result is None:
            self.result = GenerationResult("", [], "interrupted", 0, 0, 0, 0.0, 0.0)


class FakeBackend:
    """Replies with `replies` in turn (then the last again); records what it was sent."""

    model = "fake"
    n_ctx = None
    loads_models = False

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies) or ["Hi!"]
        self.sent: list[list[Message]] = []
        self.thinking: bool | None = None

    def start(self, messages, params: SamplingParams, grammar) -> FakeStream:
        self.sent.append(list(messages))
        text = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        return FakeStream(text, params.max_tokens)

    def count(self, text: str) -> int:
        return len(text.split())

    def prompt_tokens(self, messages: list[Message]) -> int:
        return sum(self.count(m.content) for m in messages)

    def check_files_fit(self, files, used) -> None:
        return None

    def window(self, conversation, system, reserve):
        return conversation.seen(system), 0

    def show_prompt(self, messages, params):
        return "\n".join(f"{m.role}: {m.content}" for m in messages), None

    def choice_probabilities(self, messages, labels):
        raise UsageError("the fake backend has no logits")

    def model_names(self):
        return ("fake",)

    def facts(self) -> BackendFacts:
        return BackendFacts(name="fake", where="memory")

    def prepare_grammars(self) -> None:
        return None

    def think(self, on: bool | None) -> None:
        self.thinking = on

    def save_state(self, conversation_id: str) -> None:
        return None

    def restore_state(self, conversation_id: str) -> int:
        return 0

    def close(self) -> None:
        return None
