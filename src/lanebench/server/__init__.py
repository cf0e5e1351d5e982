"""A launched server process: its own process group, readiness, log, how it died."""
