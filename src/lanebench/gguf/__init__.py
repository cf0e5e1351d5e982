"""GGUF work: inspect, check, convert (HF -> GGUF), translate and synthesise models.

Reading and writing go through the ``gguf`` package (llama.cpp's own gguf-py). Gemma 4
assistant keys are written by name: PyPI ``gguf`` 0.19 has no GEMMA4_ASSISTANT constants.
"""
