"""The sections of scripts/bench.py, one module each; common.py has the models and the
llama.cpp baselines they share."""
