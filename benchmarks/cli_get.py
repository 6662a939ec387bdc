"""``e3 get`` of a small dataset against ``python -c "import east"`` (target: ratio ≤ 1.5)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from benchmarks.harness import E3, ROOT, e3, median_of, medians_interleaved, ms, table


def run(*, quick: bool, sizes: str | None = None) -> None:
    del sizes
    repeat = 5 if quick else 30
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        e3("repo", "create", repo)
        e3("package", "build", ROOT / "examples" / "hello.py", "-o", Path(tmp) / "h.zip")
        e3("package", "import", repo, Path(tmp) / "h.zip")
        e3("workspace", "deploy", repo, "ws", "hello")
        py = sys.executable
        base = median_of([py, "-c", "pass"], repeat)
        east, get = medians_interleaved(
            [[py, "-c", "import east"], [E3, "get", str(repo), "ws.inputs.x"]], repeat
        )
        get_json = median_of([E3, "get", str(repo), "ws.inputs.x", "-f", "json"], repeat)
        help_ = median_of([E3, "--help"], repeat)
        table(
            ["command", "median", "vs import east"],
            [
                ["python -c pass", ms(base), f"{base / east:.2f}"],
                ['python -c "import east"', ms(east), "1.00"],
                ["e3 get repo ws.inputs.x", ms(get), f"{get / east:.2f}"],
                ["e3 get … -f json", ms(get_json), f"{get_json / east:.2f}"],
                ["e3 --help", ms(help_), f"{help_ / east:.2f}"],
            ],
        )
