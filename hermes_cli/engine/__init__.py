"""The engine: the only layer that imports llama_cpp.

Its modules: `params` (plain data: sampling settings, results), `model` (a loaded GGUF and
its context), `generation` (one streamed reply), `parallel` (continuous batching), `gguf`
(the file header, read without llama.cpp), `hardware` (usable CPUs), `quiet` (silencing
llama.cpp's C output), `build` (what llama.cpp was compiled with). Importing this package
imports nothing heavy: llama_cpp is loaded on first use.
"""
