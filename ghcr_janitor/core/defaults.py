"""Defaults shared by the library and the CLI (no imports: the CLI loads it at start-up)."""

# Parallel registry requests: the upper bound of the adaptive in-flight limit (net/adaptive.py), which
# starts there and backs off when the registry slows down or answers 429/503. Measured
# (benchmarks/results.md): over a 100 ms round trip 64 beat 32 by ~25%; on loopback (2,000 tags) 64
# and 32 cost the same CPU (2.31 s and 2.43 s of the same minutes).
DEFAULT_CONCURRENCY = 64
