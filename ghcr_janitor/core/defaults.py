"""Defaults shared by the library and the CLI (no imports: the CLI loads it at start-up)."""

# Parallel registry requests: the upper bound of the adaptive in-flight limit (net/adaptive.py). Measured (benchmarks/results.md): over a 40 ms round trip 32
# beat 16 by ~15%; on loopback the registry's own CPU is the limit and 16 or 32 are alike.
DEFAULT_CONCURRENCY = 32
