"""Rendering results: the seed report's tables, files, plots."""
