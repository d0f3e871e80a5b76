"""kernel-harness: checks that a candidate kernel computes the reference's function and measures how much faster it is."""

__version__ = "0.1.0"
