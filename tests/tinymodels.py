"""Tiny llama-architecture GGUFs written with gguf-py, so no test ever downloads a model.

Two kinds, both with a Llama-3-like byte-level BPE vocabulary and the ChatML control
tokens (ids found by name in the tests, never assumed):

- random: normal random weights; the text is random bytes (often invalid UTF-8), which
  exercises the incremental decoder, and a grammar still forces valid JSON out of it.
- bigram: attention and FFN outputs are zero, so the residual stream is the current
  token's one-hot embedding and `output` is a next-token table; the model is then fully
  deterministic ("after `\\n` write `H`, after `H` write `i`, after `i` write
  <|im_end|>"), which lets tests assert exact replies, stop reasons and token counts.

Used by tests/conftest.py and scripts/bench.py. Writing one takes a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

SPECIAL_TOKENS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|eot_id|>",
)
# A few merges so the BPE merge table is real: "ĊĊ" (two newlines) matters for ChatML
# fidelity, because a template that puts "\n" before content starting with "\n" gives
# one token where naive piecewise tokenization gives two.
MERGES = (("Ġ", "Ġ"), ("Ċ", "Ċ"), ("h", "i"), ("Ġ", "t"))

CHATML_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Llama-3 Instruct's and Gemma's own templates (as their GGUFs embed them), for the
# non-ChatML path (prompt/jinja_template.py): vocabularies without <|im_start|>.
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)


class Family:
    """A template family: its control tokens, BOS/EOS, and chat template."""

    def __init__(self, specials: tuple[str, ...], bos: str, eos: str, template: str) -> None:
        self.specials, self.bos, self.eos, self.template = specials, bos, eos, template


FAMILIES = {
    "chatml": Family(SPECIAL_TOKENS, "<|begin_of_text|>", "<|im_end|>", CHATML_TEMPLATE),
    "llama3": Family(("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                      "<|end_header_id|>", "<|eot_id|>"), "<|begin_of_text|>", "<|eot_id|>",
                     LLAMA3_TEMPLATE),
    "gemma": Family(("<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>", "<pad>"), "<bos>",
                    "<end_of_turn>", GEMMA_TEMPLATE),
}

# Hermes-2-Pro made <tool_call> one added (user-defined) token; a bigram model can then
# start a call on its own, which tests `auto` tool choice.
USER_TOKENS = ("<tool_call>",)

TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER = 1, 3, 4


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (byte-level BPE)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def vocabulary(user_tokens: Sequence[str] = USER_TOKENS, family: str = "chatml") -> list[str]:
    """Byte tokens (in byte order), then merged tokens, then the special tokens."""
    b2u = byte_to_unicode()
    tokens = [b2u[b] for b in range(256)]
    tokens += [a + b for a, b in MERGES]
    tokens += list(FAMILIES[family].specials)
    tokens += list(user_tokens)
    return tokens


def token_id(text: str, family: str = "chatml") -> int:
    """Id of a token by its vocabulary string ("<|im_end|>", "H", "Ċ" for a newline)."""
    return vocabulary(family=family).index(text)


def byte_token(byte: int) -> int:
    """Id of the single-byte token for `byte` (byte tokens come first, in byte order)."""
    return byte


def chain(reply: bytes, *, after: int = 0x0A, end: str | None = "<|im_end|>",
          family: str = "chatml") -> dict[int, int]:
    """Bigram table that answers `reply` after the byte `after`, then `end`.

    Every byte of `reply` must be unique (a bigram model cannot count). With `end=None`
    the last byte leads back to the first one, so the model never stops by itself.
    """
    ids = [byte_token(after)] + [byte_token(b) for b in reply]
    if len(set(ids)) != len(ids):
        raise ValueError("chain bytes must be unique, including the trigger byte")
    table = {a: b for a, b in zip(ids, ids[1:])}
    table[ids[-1]] = token_id(end, family) if end else ids[1]
    return table


def write_model(
    path: Path,
    *,
    kind: str = "random",
    bigram: Mapping[int, int] | None = None,
    default_next: str | None = None,
    context_length: int = 2048,
    embedding: int = 64,
    blocks: int = 1,
    heads: int = 4,
    seed: int = 0,
    chat_template: str | None = "",
    name: str = "tiny-chatml",
    split_max_tensors: int = 0,
    user_tokens: Sequence[str] = USER_TOKENS,
    family: str = "chatml",
) -> Path:
    """Write a tiny llama GGUF to `path` and return it.

    Args:
        kind: "random" or "bigram".
        bigram: for "bigram", token id -> next token id; unlisted tokens go to `default_next`.
        context_length: the trained context the GGUF declares (what `--ctx 0` gives).
        embedding: width for "random"; "bigram" widens it to hold one-hot embeddings.
        user_tokens: added (user-defined) tokens; () for a vocabulary in which the model
            cannot open a tool call with one token.
        family: "chatml", "llama3" or "gemma": the control tokens and the chat template
            ("" gives the family's template, None none); `default_next` defaults to its EOS.
        split_max_tensors: >0 writes a split GGUF (`NAME-00001-of-0000N.gguf`, ...) as
            llama.cpp's gguf-split does; the first part's path is returned.
    """
    import gguf  # test-only dependency

    fam = FAMILIES[family]
    tokens = vocabulary(user_tokens, family)
    default_next = default_next or fam.eos
    if chat_template == "":
        chat_template = fam.template
    n_vocab = len(tokens)
    rng = np.random.default_rng(seed)
    if kind == "bigram":
        embedding = ((n_vocab + heads * 2 - 1) // (heads * 2)) * heads * 2
    elif kind != "random":
        raise ValueError(f"unknown kind {kind!r}")
    n_embd, n_ff, head_dim = embedding, embedding * 2, embedding // heads

    writer = gguf.GGUFWriter(str(path), "llama", split_max_tensors=split_max_tensors)
    writer.add_name(name)
    writer.add_context_length(context_length)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(blocks)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("llama-bpe")
    writer.add_token_list(tokens)
    writer.add_token_types([TOKEN_CONTROL if t in fam.specials else
                            TOKEN_USER if t in user_tokens else TOKEN_NORMAL for t in tokens])
    writer.add_token_merges([f"{a} {b}" for a, b in MERGES])
    writer.add_bos_token_id(tokens.index(fam.bos))
    writer.add_eos_token_id(tokens.index(fam.eos))
    writer.add_pad_token_id(tokens.index(fam.specials[1]))
    writer.add_add_bos_token(True)
    if chat_template is not None:
        writer.add_chat_template(chat_template)

    f32 = np.float32
    if kind == "random":
        def rand(*shape: int) -> np.ndarray:
            return (rng.standard_normal(shape) * 0.5).astype(f32)

        embd, output = rand(n_vocab, n_embd), rand(n_vocab, n_embd)
        attn_out, ffn_down = rand(n_embd, n_embd), rand(n_embd, n_ff)
    else:
        # One-hot embeddings; output row `next` picks out column `current`.
        embd = np.zeros((n_vocab, n_embd), f32)
        embd[np.arange(n_vocab), np.arange(n_vocab)] = 1.0
        table = dict(bigram or {})
        fallback = tokens.index(default_next)
        output = np.zeros((n_vocab, n_embd), f32)
        for current in range(n_vocab):
            output[table.get(current, fallback), current] = 4.0
        attn_out = np.zeros((n_embd, n_embd), f32)
        ffn_down = np.zeros((n_embd, n_ff), f32)

    def small(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.1).astype(f32)

    writer.add_tensor("token_embd.weight", embd)
    writer.add_tensor("output_norm.weight", np.ones(n_embd, f32))
    writer.add_tensor("output.weight", output)
    for i in range(blocks):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, f32))
        writer.add_tensor(f"blk.{i}.attn_q.weight", small(n_embd, n_embd))
        writer.add_tensor(f"blk.{i}.attn_k.weight", small(heads * head_dim, n_embd))
        writer.add_tensor(f"blk.{i}.attn_v.weight", small(heads * head_dim, n_embd))
        writer.add_tensor(f"blk.{i}.attn_output.weight", attn_out)
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, f32))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", small(n_ff, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", small(n_ff, n_embd))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", ffn_down)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if split_max_tensors:
        parts = sorted(Path(path).parent.glob(Path(path).stem + "-00001-of-*.gguf"))
        return parts[0]
    return Path(path)


def ids_for(text: bytes) -> Sequence[int]:
    """Byte-token ids of `text`, as the bigram model emits them (no merges applied)."""
    return [byte_token(b) for b in text]
