"""kernel-harness: checks that a candidate kernel computes the reference's function and measures its speedup."""

__version__ = "0.1.0"
