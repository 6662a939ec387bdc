"""``python -m benchmarks.peers``: e3 and its peers on the same dataflows (see ``compare.py``)."""

from __future__ import annotations

import sys

from benchmarks.peers.compare import main

if __name__ == "__main__":
    sys.exit(main())
