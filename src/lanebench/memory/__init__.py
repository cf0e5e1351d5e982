"""Memory per lane: what the server log says it allocated, what the process tree held, and
an estimate from the GGUF made before anything starts (the fit check)."""
