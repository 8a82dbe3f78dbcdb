"""One interface to what writes the replies: a model loaded here, or a served engine.

Everything the layers above would otherwise decide by asking "is there a local engine?"
is a question to the backend: its context size (a served engine's is unknown), how many
tokens a text or a prompt takes, which turns fit the window, what exactly the model is
sent (`--show-prompt`, `/prompt`), how to describe it, the figures of a reply
(`--stats`, `/stats`, the chat footer), whether its KV state can be kept, and whether
another model can be loaded in its place. `ask`, `chat` and `batch` hold a Backend and
never branch on which kind it is.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TextIO

from hermes_cli.core.attachments import Sized, check_fit
from hermes_cli.core.reply import Stream
from hermes_cli.engine.params import SamplingParams, common_prefix_length
from hermes_cli.errors import HermesError, UsageError
from hermes_cli.modes.tools.loop import ToolOptions
from hermes_cli.prompt.call_format import FORMATS, choose, gguf_names
from hermes_cli.prompt.messages import Message
from hermes_cli.prompt.reply_grammar import ReplyGrammar

if TYPE_CHECKING:  # the engine is imported where a model is loaded: `ask --endpoint` never pays for it
    from hermes_cli.core.conversation import Conversation
    from hermes_cli.core.loading import LoadOptions
    from hermes_cli.engine.model import Engine
    from hermes_cli.engine.prompt_cache import KeptPrefix, PromptCache
    from hermes_cli.prompt.template import PromptFormat
    from hermes_cli.served.backend import ServedBackend



@dataclass(frozen=True)
class BackendFacts:
    """What a backend is, as facts: the front ends word them (core/figures.py)."""

    name: str  # a model file's name, or a served model's
    where: str  # the model file's path, or the server's URL
    n_ctx: int | None = None  # None: a served engine's, unknown here
    n_ctx_train: int | None = None
    gpu_layers: int | None = None
    threads: int | None = None
    gpu_offload_supported: bool = False


class Backend(Protocol):
    """What `ask`, `chat` and `batch` need from the thing that writes replies."""

    @property
    def model(self) -> str:
        """The name the conversation records."""

    @property
    def n_ctx(self) -> int | None:
        """The context size, when known."""

    def choice_probabilities(self, messages: list[Message], labels: list[str]) -> list[float]:
        """P(the reply is exactly each label), computed from the model's logits and
        normalized over the labels (decision mode); UsageError where it cannot be."""

    def model_names(self) -> tuple[str | None, ...]:
        """The names the model is known by (a GGUF's name and file name, a served model's
        name): what its call format is detected from (prompt/call_format.py)."""

    def start(self, messages: list[Message], params: SamplingParams, grammar: ReplyGrammar | None) -> Stream: ...

    def count(self, text: str) -> int | None:
        """Tokens `text` takes, or None when the backend cannot say."""

    def prompt_tokens(self, messages: list[Message]) -> int | None: ...

    def check_files_fit(self, files: list[Sized], used: int | None) -> None:
        """Raise ContextOverflowError when `files` cannot fit beside `used` tokens."""

    def window(self, conversation: Conversation, system: str | None, reserve: int) -> tuple[list[Message], int]:
        """The messages the model sees, and how many of the conversation's were left out."""

    def show_prompt(self, messages: list[Message], params: SamplingParams) -> tuple[str, list[int] | None]:
        """Exactly what is sent: the rendered prompt and its ids, or the request's JSON."""

    def facts(self) -> BackendFacts:
        """What it is, for the front ends to word (core/figures.py)."""

    def prepare_grammars(self) -> None: ...

    def think(self, on: bool | None) -> None:
        """A reasoning model told to think before answering (True), not to (False), or left
        to its default (None): the template's switch, or an empty thinking section."""

    @property
    def thinking(self) -> bool | None:
        """What `think` last set (None: the model's default)."""

    @property
    def loads_models(self) -> bool:
        """Whether another model can be loaded in its place (`/model`): a served engine
        serves what it serves."""

    @property
    def concurrent(self) -> bool:
        """Whether replies may be asked for from several threads at once (a served engine:
        `batch --concurrency`); a model here decodes several only in one batch."""

    def parallel_slots(self, n: int) -> LocalBackend:
        """The model and prompt format that decode `n` prompts together (`batch
        --parallel`); UsageError where that cannot be."""

    def save_state(self, conversation_id: str) -> None: ...

    def restore_state(self, conversation_id: str) -> int: ...

    def close(self) -> None: ...


class LocalBackend:
    """The loaded engine, with the prompt format that renders messages to its ids.

    With a `prompt_cache` (one-shot `ask`), the system prompt's KV state is loaded from
    disk when an earlier process kept it, else evaluated alone and kept: the part of the
    prompt that is the same from one process to the next is known here, where the
    messages are (the engine sees only ids)."""

    def __init__(self, engine: Engine, template: PromptFormat | None = None, *, model: str | None = None,
                 prompt_cache: PromptCache | None = None) -> None:
        self.engine = engine
        from hermes_cli.prompt.template import template_for

        self.template = template if template is not None else template_for(engine)
        self.model = model or str(engine.info.path)  # the reference it was loaded by, to load it again
        self.prompt_cache = prompt_cache

    @property
    def n_ctx(self) -> int:
        return self.engine.n_ctx

    def start(self, messages: list[Message], params: SamplingParams, grammar: ReplyGrammar | None) -> Stream:
        ids = self.template.render(messages)
        stream: Stream = self.engine.generate(ids, params, grammar=grammar, kept=self._kept(messages, ids))
        return stream

    def _kept(self, messages: list[Message], ids: list[int]) -> KeptPrefix | None:
        """The leading system messages' share of `ids`, when long enough to keep."""
        if self.prompt_cache is None:
            return None
        system = []
        for m in messages:
            if m.role != "system":
                break
            system.append(m)
        if not system or len(system) == len(messages):
            return None
        try:
            alone = self.template.render(system, add_generation_prompt=False)
        except HermesError:  # a template that wants a user turn: nothing is kept, nothing lost
            return None
        n = common_prefix_length(ids, alone)
        from hermes_cli.engine.prompt_cache import MIN_TOKENS, KeptPrefix

        return KeptPrefix(self.prompt_cache, n) if MIN_TOKENS <= n < len(ids) else None

    def count(self, text: str) -> int:
        return len(self.engine.tokenize(text))

    def prompt_tokens(self, messages: list[Message]) -> int:
        return len(self.template.render(messages))

    def check_files_fit(self, files: list[Sized], used: int | None) -> None:
        check_fit(files, used or 0, self.n_ctx)

    def window(self, conversation: Conversation, system: str | None, reserve: int) -> tuple[list[Message], int]:
        return conversation.window(self.template, system, self.n_ctx, min(reserve, self.n_ctx // 4))

    def show_prompt(self, messages: list[Message], params: SamplingParams) -> tuple[str, list[int]]:
        ids = self.template.render(messages)
        return self.engine.detokenize(ids, special=True), ids

    def choice_probabilities(self, messages: list[Message], labels: list[str]) -> list[float]:
        from hermes_cli.engine.scoring import continuation_logprobs, normalized

        prompt = self.template.render(messages)
        tokens = [self.engine.tokenize(label) for label in labels]
        return normalized(continuation_logprobs(self.engine, prompt, tokens, self.engine.eog_tokens()))

    def model_names(self) -> tuple[str | None, ...]:
        return gguf_names(self.engine.info.metadata, self.engine.info.path.name)

    def facts(self) -> BackendFacts:
        info = self.engine.info
        return BackendFacts(name=info.path.name, where=str(info.path), n_ctx=info.n_ctx,
                            n_ctx_train=info.n_ctx_train, gpu_layers=info.n_gpu_layers,
                            threads=info.n_threads, gpu_offload_supported=info.gpu_offload_supported)

    def prepare_grammars(self) -> None:
        self.engine.prefetch_grammars()

    def think(self, on: bool | None) -> None:
        self.template.thinking = on

    @property
    def thinking(self) -> bool | None:
        return self.template.thinking

    loads_models = True
    concurrent = False

    def parallel_slots(self, n: int) -> LocalBackend:
        return self  # engine/parallel.py says when the model was loaded for too few sequences

    def save_state(self, conversation_id: str) -> None:
        from hermes_cli.core import sessions

        sessions.save_state(self.engine, conversation_id)

    def restore_state(self, conversation_id: str) -> int:
        from hermes_cli.core import sessions

        return sessions.restore_state(self.engine, conversation_id)

    def close(self) -> None:
        self.engine.close()


class EndpointBackend:
    """A served engine (`--endpoint`): it renders and fits its own prompt, so token
    figures come from its usage report, when it sends one."""

    n_ctx = None

    def __init__(self, served: ServedBackend) -> None:
        self.served = served
        self.model = served.model

    def start(self, messages: list[Message], params: SamplingParams, grammar: ReplyGrammar | None) -> Stream:
        return self.served.start(messages, params, grammar)

    def count(self, text: str) -> None:
        return None

    def prompt_tokens(self, messages: list[Message]) -> None:
        return None

    def check_files_fit(self, files: list[Sized], used: int | None) -> None:
        return None  # the server says when its context overflows

    def window(self, conversation: Conversation, system: str | None, reserve: int) -> tuple[list[Message], int]:
        return conversation.seen(system), 0

    def show_prompt(self, messages: list[Message], params: SamplingParams) -> tuple[str, None]:
        return json.dumps(self.served.request(messages, params), ensure_ascii=False, indent=2), None

    def choice_probabilities(self, messages: list[Message], labels: list[str]) -> list[float]:
        raise UsageError("--choices needs a model loaded here: a served engine does not send its logits")

    def model_names(self) -> tuple[str | None, ...]:
        return (self.served.model,)

    def facts(self) -> BackendFacts:
        return BackendFacts(name=self.served.model, where=self.served.pool.primary.base_url)

    def prepare_grammars(self) -> None:
        return None  # the server builds its own (and ours check every answer)

    def think(self, on: bool | None) -> None:
        self.served.thinking = on  # sent as chat_template_kwargs, as vLLM and llama-server read it

    @property
    def thinking(self) -> bool | None:
        return self.served.thinking

    loads_models = False
    concurrent = True

    def parallel_slots(self, n: int) -> LocalBackend:
        raise UsageError("--parallel decodes prompts together in a model loaded here; a served engine "
                         "takes several requests at once with --concurrency")

    def save_state(self, conversation_id: str) -> None:
        return None  # the server's KV cache is its own

    def restore_state(self, conversation_id: str) -> int:
        return 0

    def close(self) -> None:
        self.served.pool.close()


def open_backend(opts: LoadOptions, *, endpoints: list[str] | None, key_env: str, served_model: str | None,
                 err: TextIO, vocab_only: bool = False, buffered: bool = False, timeout: float | None = None,
                 n_seq_max: int = 1) -> Backend:
    """What writes the replies: the served engine when `endpoints` are given, else the
    model `opts` names, loaded here. The one place a command chooses between them.
    `buffered` and `timeout` are for a served engine (answers read whole, a batch's), and
    `n_seq_max` for a model loaded here (sequences decoded together, `batch --parallel`):
    each applies where it means something."""
    from hermes_cli.core.loading import connect, load_engine

    if endpoints:
        return EndpointBackend(connect(endpoints, served_model, key_env, buffered=buffered, timeout=timeout))
    engine = load_engine(opts, err=err, vocab_only=vocab_only, n_seq_max=n_seq_max)
    cache = None
    if opts.prompt_cache and not vocab_only:
        from hermes_cli import env
        from hermes_cli.engine.prompt_cache import PromptCache

        cache = PromptCache(env.cache_dir() / "prompts")
    return LocalBackend(engine, model=opts.model, prompt_cache=cache)


def replace_model(old: Backend, opts: LoadOptions, err: TextIO) -> Backend:
    """Another model loaded here in `old`'s place (`/model`), with its thinking setting;
    `old` is closed only once the new one loaded, so a failure leaves it as it was."""
    if not old.loads_models:
        raise UsageError("this chat runs on a served engine: restart it with another --model")
    new = open_backend(opts, endpoints=None, key_env="", served_model=None, err=err)
    try:
        new.think(old.thinking)  # /think on|off holds across /model
    except Exception:
        new.close()
        raise
    old.close()
    return new


def with_call_format(tools: ToolOptions | None, backend: Backend) -> ToolOptions | None:
    """`tools` with the call format this backend's model writes (prompt/call_format.py),
    unless the user set one: the one place it is decided, for ask, chat and batch."""
    if tools is None or tools.call_format in FORMATS:
        return tools
    return dataclasses.replace(tools, call_format=choose(tools.call_format, *backend.model_names())[0])
