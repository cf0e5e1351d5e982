"""What each store schema added, for tests that make an older database by dropping it again."""

# schema 10 (the envelope): (table, column)
SCHEMA_10 = [
    ("samples", "depth"),
    ("samples", "concurrency"),
    ("samples", "start_offset_s"),
    ("samples", "arrivals"),
    ("aggregates", "depth"),
    ("lanes", "envelope"),
]
