"""Measuring the measurement: A/A spread, known effects and accuracy against the profiler
(`harness calibrate`); `probe` runs in a child process beside the harness's own runs."""
