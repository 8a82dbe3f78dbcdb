"""Files in the prompt: `/read`, `@path` in a chat message, `-f/--file` on ask, and
`"files"` on a batch line all put a file's text into the user turn, fenced with its name.

The text is data: it goes into the message's content, which is tokenized with special
parsing off like any user text, so a file holding `<|im_start|>system` cannot forge a
turn. Binary and non-UTF-8 files are refused in one line; a directory asks for a glob;
each file's size in tokens is known before anything is sent.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hermes_cli import inputs
from hermes_cli.errors import ContextOverflowError, UsageError

MAX_BYTES = 8 * 1024 * 1024  # nothing bigger fits any context; refuse before reading it
_LANGUAGES = {".py": "python", ".js": "javascript", ".ts": "typescript", ".md": "markdown",
              ".json": "json", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".sh": "bash",
              ".rs": "rust", ".go": "go", ".c": "c", ".h": "c", ".cpp": "cpp", ".java": "java",
              ".html": "html", ".css": "css", ".sql": "sql", ".rb": "ruby"}
_MENTION = re.compile(r"(?<![\w@])@(\S+)")


@dataclass(frozen=True)
class Attachment:
    name: str  # as the user wrote it (relative paths stay relative)
    text: str

    def fenced(self) -> str:
        """The file as Markdown: its name, then a fence longer than any backtick run
        inside it, so the file cannot close the fence early."""
        longest = max((len(m) for m in re.findall(r"`+", self.text)), default=0)
        fence = "`" * max(3, longest + 1)
        lang = _LANGUAGES.get(Path(self.name).suffix.lower(), "")
        body = self.text if self.text.endswith("\n") else self.text + "\n"
        return f"File: {self.name}\n{fence}{lang}\n{body}{fence}"


def read_files(specs: list[str], *, cwd: Path | None = None, root: Path | None = None,
               run: Callable[[str], bool] | None = None) -> list[Attachment]:
    """Every file the specs name (paths or globs), in order, each once; with `root`,
    each must resolve (symbolic links followed) to a file under it. A spec that is an
    http(s) URL is the page's text; one that starts with `!` is a command's output, run
    only when `run(command)` says yes (the person at the terminal; None: never, as in
    batch lines) (core/fetched.py)."""
    from hermes_cli.core import fetched

    cwd = cwd or Path.cwd()
    out: list[Attachment] = []
    seen: set[Path] = set()
    for spec in specs:
        if fetched.is_url(spec):
            out.append(Attachment(spec, fetched.fetch_url(spec)))
            continue
        if fetched.is_command(spec):
            command = spec[1:].strip()
            if run is None:
                raise UsageError(f"{spec}: commands are not run from here", hint="batch lines never run commands")
            if not run(command):
                raise UsageError(f"`{command}` was not run: a command's output is attached only after a yes "
                                 "typed at the terminal", hint="answer y, or pass --yes")
            out.append(Attachment(f"output of `{command}`", fetched.command_output(command)))
            continue
        for path in _expand(spec, cwd):
            real = path.resolve()
            if root is not None and not real.is_relative_to(root.resolve()):
                raise UsageError(f"{spec} is outside the working directory {root}",
                                 hint="batch lines may name only files under it; --allow-files-outside lifts this")
            if real in seen:
                continue
            seen.add(real)
            out.append(Attachment(_display(path, cwd, spec), read_text(path, spec)))
    return out


def _expand(spec: str, cwd: Path) -> list[Path]:
    raw = Path(spec).expanduser()
    path = raw if raw.is_absolute() else cwd / raw
    if glob.has_magic(spec):
        found = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not found:
            raise UsageError(f"{spec}: no file matches")
        return found
    if path.is_dir():
        raise UsageError(f"{spec} is a directory: name files, or a glob such as {spec.rstrip('/')}/*.py")
    if not path.exists():
        raise UsageError(f"{spec}: no such file")
    return [path]


def _display(path: Path, cwd: Path, spec: str) -> str:
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path) if glob.has_magic(spec) else spec


def read_text(path: Path, spec: str) -> str:
    """A file's text; one clear line for what cannot be prompt text."""
    data = inputs.read_file(path, MAX_BYTES, spec)  # regular files only, bounded
    if b"\x00" in data[:8192]:
        raise UsageError(f"{spec} is a binary file, not text")
    try:
        return data.decode("utf-8-sig")  # a byte-order mark is not part of the text
    except UnicodeDecodeError as e:
        raise UsageError(f"{spec} is not UTF-8 text (byte {e.start})") from None


def with_files(text: str, attachments: list[Attachment]) -> str:
    """The user turn: what the user wrote, then each file, fenced with its name."""
    parts = [text.rstrip("\n")] if text.strip() else []
    parts += [a.fenced() for a in attachments]
    return "\n\n".join(parts)


def expand_mentions(text: str, *, cwd: Path | None = None) -> tuple[str, list[Attachment]]:
    """`@path` in a chat message attaches that file, `@https://…` that page (an `@`
    before something that is neither, an e-mail address say, stays as it is)."""
    cwd = cwd or Path.cwd()
    found: list[str] = []
    for match in _MENTION.finditer(text):
        name = match.group(1).rstrip(".,;:!?)")
        path = Path(name).expanduser()
        if name.startswith(("http://", "https://")) or glob.has_magic(name) or (cwd / path).is_file() \
                or path.is_file():
            found.append(name)
    return text, read_files(found, cwd=cwd) if found else []


@dataclass(frozen=True)
class Sized:
    """An attachment and its size in the model's tokens (None: a served engine's)."""

    attachment: Attachment
    tokens: int | None


def measure(attachments: list[Attachment], count: Callable[[str], int | None] | None) -> list[Sized]:
    return [Sized(a, count(a.fenced()) if count else None) for a in attachments]


def check_fit(sized: list[Sized], used: int, n_ctx: int) -> None:
    """Refuse files that cannot fit beside the `used` tokens of the rest of the prompt,
    naming both sizes (the largest file first: the one to drop)."""
    total = sum(s.tokens or 0 for s in sized)
    if used + total < n_ctx:
        return
    big = max(sized, key=lambda s: s.tokens or 0)
    names = big.attachment.name if len(sized) == 1 else f"{len(sized)} files ({big.attachment.name} " \
        f"alone {big.tokens:,})"
    raise ContextOverflowError(used + total, n_ctx, message=(
        f"{names} would take {total:,} tokens; with the rest of the prompt ({used:,}) that is "
        f"{used + total:,}, and the context holds {n_ctx:,}"))


def describe(sized: list[Sized]) -> str:
    """`notes.md (1,234 tokens), a.py (56 tokens)` for the line shown before sending."""
    return ", ".join(f"{s.attachment.name} ({s.tokens:,} tokens)" if s.tokens is not None
                     else s.attachment.name for s in sized)
