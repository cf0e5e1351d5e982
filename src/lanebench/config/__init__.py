"""What to measure: lanes files, lane fields, the job, the default model."""
