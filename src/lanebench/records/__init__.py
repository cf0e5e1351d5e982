"""What a run produces: typed records, no I/O (requests, lanes, quality, memory, load)."""
