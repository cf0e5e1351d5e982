"""The machine itself: what it is (CPU, RAM) and its memory bandwidth."""
