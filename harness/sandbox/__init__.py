"""What runs inside the worker processes, and nothing else.

The reference session (trusted: loads suite files only, draws inputs, compares outputs, is timed)
and the candidate session (imports one untrusted solution), the request loop that serves them, the
tamper guard, Landlock, the keeper's process tree and the process entry points; the wire format
and the staging of inputs and outputs shared with the supervisor. Nothing here imports the
supervisor side (`harness.evaluation`), the CLI, the artifact writers or the renderers: what runs
next to candidate code stays small and cannot tangle with what judges it
(`tests/test_layout.py` enforces it).
"""
