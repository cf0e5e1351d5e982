"""Command-line adapters: parse input, build one config, call one core function."""
