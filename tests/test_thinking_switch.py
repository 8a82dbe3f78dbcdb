"""`--think/--no-think` and `/think on|off`: a reasoning model told to answer at once gets
its template's own switch (`enable_thinking`, Qwen3's and SmolLM3's), or, with no switch,
the empty `<think></think>` section Qwen3's template writes; a served engine is sent
`chat_template_kwargs`."""

from __future__ import annotations

import json
import subprocess

from hermes_cli.core import openai_request
from hermes_cli.engine.params import SamplingParams
from hermes_cli.prompt.chatml import ChatML
from hermes_cli.prompt.jinja_template import JinjaTemplate
from hermes_cli.prompt.messages import Message
from tests import tinymodels as tm
from tests.test_reasoning import THINK_TOKENS

SWITCHED = ("{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{{ m.content }}<|eot_id|>"
            "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n"
            "{% if enable_thinking is defined and not enable_thinking %}[answer directly]{% endif %}{% endif %}")


def show_prompt(exe: list[str], model, *args: str) -> str:
    proc = subprocess.run([*exe, "ask", "-m", str(model), "--show-prompt", *args, "hi"], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_no_think_ends_a_chatml_prompt_with_an_empty_thinking_section(hermes_exe, models) -> None:
    assert show_prompt(hermes_exe, models["hi"]).rstrip("\n").endswith("<|im_start|>assistant")
    assert show_prompt(hermes_exe, models["hi"], "--think").rstrip("\n").endswith("<|im_start|>assistant")
    off = show_prompt(hermes_exe, models["hi"], "--no-think")
    assert off.rstrip("\n").endswith("<|im_start|>assistant\n<think>\n\n</think>")


def test_the_tags_are_the_vocabularys_own_tokens_where_it_has_them(tmp_path, load) -> None:
    from hermes_cli.engine.model import Engine

    path = tm.write_model(tmp_path / "think.gguf", kind="bigram", bigram=tm.chain(b"ok"), user_tokens=THINK_TOKENS)
    engine = Engine.load(path, n_threads=2)
    try:
        chatml = ChatML(engine)
        plain = chatml.render([Message("user", "<think>x</think>")])
        chatml.thinking = False
        off = chatml.render([Message("user", "<think>x</think>")])
        think, unthink = engine.special_token("<think>"), engine.special_token("</think>")
        assert think is not None and unthink is not None
        assert off[:len(plain)] == plain and off[len(plain)] == think and unthink in off[len(plain):]
    finally:
        engine.close()


def test_a_template_with_the_switch_is_given_enable_thinking(load) -> None:
    engine = load("llama3_hi")
    template = JinjaTemplate(engine, SWITCHED)
    messages = [Message("user", "hi")]
    assert "[answer directly]" not in engine.detokenize(template.render(messages))
    template.thinking = False
    assert engine.detokenize(template.render(messages)).endswith("[answer directly]")
    template.thinking = True
    assert "[answer directly]" not in engine.detokenize(template.render(messages))
    # a template without the switch: the empty section after its generation prompt
    plain = JinjaTemplate(engine, SWITCHED.replace("enable_thinking is defined and not enable_thinking", "false"))
    plain.thinking = False
    assert engine.detokenize(plain.render(messages)).endswith("<think>\n\n</think>\n\n")


def test_a_template_whose_switch_is_a_bare_thinking_variable_is_given_that(load) -> None:
    """Hermes 4's templates take `thinking=True` (not Qwen3's `enable_thinking`)."""
    engine = load("llama3_hi")
    hermes4 = SWITCHED.replace("{% if enable_thinking is defined and not enable_thinking %}[answer directly]",
                               "{% if thinking %}[think first]")
    template = JinjaTemplate(engine, hermes4)
    messages = [Message("user", "hi")]
    assert "[think first]" not in engine.detokenize(template.render(messages))
    template.thinking = True
    assert engine.detokenize(template.render(messages)).endswith("[think first]")
    template.thinking = False  # its switch off: no empty section is added
    assert not engine.detokenize(template.render(messages)).endswith(("[think first]", "</think>\n\n"))


def test_a_served_engine_is_sent_the_switch_and_hermes_serve_reads_it(hermes_exe) -> None:
    from tests.scripted_server import EndlessServer

    with EndlessServer(reply="ok") as server:
        proc = subprocess.run([*hermes_exe, "ask", "--endpoint", server.url, "--model", "m", "--show-prompt",
                               "--no-think", "hi"], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["chat_template_kwargs"] == {"enable_thinking": False}
    body = {"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": {"enable_thinking": False}}
    assert openai_request.parse(json.dumps(body).encode(), SamplingParams(), "name-first").thinking is False
    assert openai_request.parse(b'{"messages": [{"role": "user", "content": "x"}]}', SamplingParams(),
                                "name-first").thinking is None


def test_slash_think_off_on_a_terminal_ends_the_prompt_with_the_empty_section(hermes_exe, models, tmp_path) -> None:
    from tests.test_chat_terminal import Terminal, env_for

    term = Terminal([*hermes_exe, "chat", "-m", str(models["hi"])], env_for(tmp_path))
    term.expect(r"Ctrl-D to quit")
    term.send("/think off\r")
    term.expect("thinking off: the model answers at once")
    term.send("/prompt\r")
    term.expect(r"assistant\s+<think>\s+</think>")
    term.send("/exit\r")
    assert term.wait() == 0


def test_the_setting_holds_when_the_chat_switches_model(models) -> None:
    import io

    from hermes_cli.core.backends import LocalBackend, replace_model
    from hermes_cli.core.loading import LoadOptions, load_engine

    backend = LocalBackend(load_engine(LoadOptions(model=str(models["hi"]), quiet=True), err=io.StringIO()))
    backend.think(False)
    switched = replace_model(backend, LoadOptions(model=str(models["eot"]), quiet=True), io.StringIO())
    try:
        assert isinstance(switched, LocalBackend) and switched.template.thinking is False
    finally:
        switched.close()


def test_model_on_a_served_chat_is_one_line_and_the_chat_goes_on(hermes_exe, tmp_path) -> None:
    import os

    from tests.scripted_server import EndlessServer

    env = {**os.environ, "HERMES_DATA_DIR": str(tmp_path / "data")}
    with EndlessServer(reply="Still here.") as server:
        proc = subprocess.run([*hermes_exe, "chat", "--endpoint", server.url, "--model", "m"],
                              input="/model other.gguf\nhello\n", capture_output=True, text=True, timeout=120,
                              env=env, start_new_session=True)
    assert proc.returncode == 0, proc.stderr
    assert "served engine: restart it with another --model" in proc.stdout + proc.stderr
    assert "Still here." in proc.stdout and "Traceback" not in proc.stderr
