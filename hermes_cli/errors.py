"""Every error hermes-cli raises on purpose, each with the exit code the CLI maps it to.

The core modules raise these with the facts a user needs (paths, sizes); `cli.main` is
the one place that turns them into a one-line message and an exit status, so scripts
can branch on the code: 2 bad usage or input, 3 model missing or unloadable, 4 context
overflow, 5 download or network, 6 an answer that failed its contract (JSON schema),
130 interrupted.
"""

from __future__ import annotations

_SECRETS: set[str] = set()


def keep_secret(value: str | None) -> None:
    """Register a secret (an API key read from the environment): from now on it is
    replaced by `***` in every error message and hint, whatever a server echoes back."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class StreamRedactor:
    """Registered secrets kept out of streamed text (a server that echoes the key back in
    its answer), even when one is split over several pieces: a piece's tail that could
    begin a secret is held until the next piece, or the end, says what it is. Without a
    registered secret, text passes untouched."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, text: str) -> str:
        if not _SECRETS:
            return text
        text = redact(self._held + text)
        hold = max((k for secret in _SECRETS for k in range(1, min(len(secret), len(text) + 1))
                    if text.endswith(secret[:k])), default=0)
        self._held = text[len(text) - hold:] if hold else ""
        return text[:len(text) - hold] if hold else text

    def finish(self) -> str:
        held, self._held = self._held, ""
        return redact(held)


class HermesError(Exception):
    """Base class: a failure the user can act on, shown without a traceback. Its message
    and hint are redacted (`keep_secret`) when made, so no copy of it, printed, logged
    or saved in a batch record, can hold a secret."""

    exit_code = 1
    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(redact(message))
        if hint is not None:
            self.hint = redact(hint)


class UsageError(HermesError):
    """Options or input that cannot work together (Typer also exits 2 for these)."""

    exit_code = 2


class SettingError(UsageError, ValueError):
    """A sampling or hardware value outside what llama.cpp takes (engine/params.py's
    tables). A ValueError too, so readers of files (sessions, batch lines, config) that
    turn bad values into their own one-line errors keep doing so."""


class ModelError(HermesError):
    """The model file is missing, is not a GGUF, is truncated, or llama.cpp refused it."""

    exit_code = 3


class ContextOverflowError(HermesError):
    """The prompt does not fit the context window; carries both sizes."""

    exit_code = 4

    def __init__(self, prompt_tokens: int, n_ctx: int, *, message: str | None = None) -> None:
        super().__init__(
            message or f"the prompt is {prompt_tokens} tokens but the context holds {n_ctx}",
            hint="shorten the input or raise --ctx (up to the model's trained length)",
        )
        self.prompt_tokens = prompt_tokens
        self.n_ctx = n_ctx


class DownloadError(HermesError):
    """The Hub could not give us the file (network, 404, gated, offline and not cached)."""

    exit_code = 5


class OutputContractError(HermesError):
    """The model's answer broke what the user asked for (invalid or incomplete JSON)."""

    exit_code = 6


def cut_short(subject: str, consequence: str, finish_reason: str, tokens: int) -> OutputContractError:
    """`subject` (the JSON reply, a tool call) cut by the reply's limit, and what that
    meant: the one wording for exit 6 by length, for JSON and tools alike."""
    why = "--max-tokens" if finish_reason == "length" else "the context size"
    return OutputContractError(f"{subject} was cut after {tokens} tokens by {why}: {consequence}",
                               hint="raise --max-tokens (or --ctx)")


class GrammarDeadEnd(OutputContractError):
    """The grammar allows no token at all (it cannot happen with a well-formed grammar;
    if it does, the answer cannot meet its contract: exit 6, not the "bug" message)."""


class DecodeError(HermesError):
    """llama.cpp could not evaluate a batch (out of memory, or no room in the KV cache)."""

    exit_code = 1


class ToolsRefused(UsageError):
    """A call needs approval that nobody can give (non-interactive, no --yes)."""


class SomeLinesFailed(HermesError):
    """Some batch lines ended in an error record (the others were answered)."""

    exit_code = 1


class NothingFound(HermesError):
    """A search found nothing (`hermes history --grep`): exit 1, as grep's."""

    exit_code = 1


class OutputWriteError(HermesError):
    """The results file cannot take another record (a full disk): the records before it
    are whole, and running the command again resumes."""

    exit_code = 1


class OutputClosed(HermesError):
    """The reader of stdout went away (`| head`): stop quietly, as SIGPIPE would."""

    exit_code = 141


INTERRUPTED_EXIT_CODE = 130

# The exit statuses every command may end with, in one place (README "Exit codes" is
# checked against it by tests/test_layout.py). Chat also ends 129/143 on SIGHUP/SIGTERM.
EXIT_CODES: dict[int, str] = {
    0: "done",
    1: "some batch lines failed, or an unexpected error",
    2: "bad usage or input",
    3: "model missing, not a GGUF, truncated or refused by llama.cpp",
    4: "the prompt does not fit the context",
    5: "download or network failed, or a served engine failed us",
    6: "an answer that broke its contract (invalid or cut JSON, a cut or malformed tool call)",
    130: "interrupted (Ctrl-C)",
    141: "stdout closed by its reader",
}


class ServerError(HermesError):
    """A served engine (--endpoint) cannot be reached, refused us, or answered nonsense."""

    exit_code = 5
