"""On-demand benchmarks (``make bench``); see ``benchmarks/__main__.py``."""
