"""wnr's benchmark harness: `python -m bench [--quick] [--runs N] [--json FILE]` (as root)."""
