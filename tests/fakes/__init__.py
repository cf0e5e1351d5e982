"""Fake binaries for fault injection, and helpers to find processes a test left behind."""
