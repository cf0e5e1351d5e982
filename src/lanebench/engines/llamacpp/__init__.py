"""llama.cpp: the engine, its build's dialect and argv, llama-bench, RPC, installs."""
