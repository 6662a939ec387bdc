"""e3 side by side with peer engines: ``make bench-peers`` (see ``compare.py``)."""
