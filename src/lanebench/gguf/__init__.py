"""GGUF work: inspect, check, convert (HF -> GGUF), translate and synthesise models.

Reading and writing go through the ``gguf`` package (llama.cpp's own gguf-py); every key is
named once, in ``keys`` (from gguf-py's ``Keys`` templates) or by the head dialect that owns it.
Importing this package registers the built-in head dialects, so their keys are checked in every
file opened.
"""

from lanebench.gguf import heads  # noqa: F401  (registers the head dialects and their keys)
