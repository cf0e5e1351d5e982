"""Engines: how to find, understand and command a serving engine."""
