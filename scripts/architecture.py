"""Draw docs/images/architecture.svg: e3's layers and the imports between them, from the code.

The layers are the ``import-linter`` layers contract in pyproject.toml (the
order CI enforces); the arrows are the imports actually found in src/e3, so the
picture cannot drift from the code. Run: ``python scripts/architecture.py``.
"""

from __future__ import annotations

import ast
import tomllib
from collections import Counter
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "e3"
OUT = ROOT / "docs" / "images" / "architecture.svg"

BOX_W, BOX_H, GAP_X, ROW_H, MARGIN = 150, 44, 30, 86, 30
NOTES = {
    "launcher": "console script",
    "cli": "e3 commands",
    "server": "HTTP API, /ui",
    "sdk": "authoring packages",
    "api": "porcelain: e3.open",
    "client": "remote repository",
    "dataflow": "plan, run, execute",
    "core": "packages, workspaces, cache",
    "runners": "process, warm East",
    "store": "objects, locks, zips",
    "model": "results, events, wire",
    "records": "on-disk formats",
    "codec": "east-py boundary",
    "base": "names, paths, files",
    "errors": "E3Error tree",
}


def layers() -> list[list[str]]:
    """The layers contract, top first, as lists of sibling packages."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contract = next(c for c in config["contracts"] if c["type"] == "layers")
    return [[p.strip().removeprefix("e3.") for p in row.split("|")] for row in contract["layers"]]


def package_of(path: Path) -> str:
    """The top-level package (``core``, ``api``…) a module belongs to."""
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def imports() -> Counter[tuple[str, str]]:
    """(importer package, imported package) → number of import statements."""
    edges: Counter[tuple[str, str]] = Counter()
    for path in SRC.rglob("*.py"):
        if path.parent == SRC and path.name == "__init__.py":
            continue
        src = package_of(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                parts = name.split(".")
                if parts[0] == "e3" and len(parts) > 1 and parts[1] != src:
                    edges[(src, parts[1])] += 1
    return edges


def reduce(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The transitive reduction: an import implied by a chain of others is not drawn."""
    succ: dict[str, set[str]] = {}
    for a, b in edges:
        succ.setdefault(a, set()).add(b)

    def reach(start: str, skip: tuple[str, str]) -> set[str]:
        seen: set[str] = set()
        stack = [start]
        while stack:
            n = stack.pop()
            for m in succ.get(n, ()):
                if (n, m) != skip and m not in seen:
                    seen.add(m)
                    stack.append(m)
        return seen

    return {(a, b) for a, b in edges if b not in reach(a, (a, b))}


def draw() -> str:
    """The SVG text of the picture."""
    rows = layers()
    width = max(660, MARGIN * 2 + max(len(r) for r in rows) * (BOX_W + GAP_X) - GAP_X + 170)
    height = MARGIN * 2 + len(rows) * ROW_H + 40
    pos: dict[str, tuple[float, float]] = {}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="Helvetica, Arial, sans-serif">',
        '<defs><marker id="a" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="#8792a2"/></marker></defs>',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{MARGIN}" y="{MARGIN - 8}" font-size="15" font-weight="bold">'
        "e3: its layers (each imports only those below) and what imports what</text>",
        f'<text x="{MARGIN}" y="{MARGIN + 8}" font-size="11" fill="#6b7280">'
        "arrows: imports found in src/e3, those implied by a chain of others left out;"
        " layers: the import-linter contract CI checks</text>",
    ]
    content_w = width - 170
    for i, row in enumerate(rows):
        y = MARGIN + 30 + i * ROW_H
        span = len(row) * (BOX_W + GAP_X) - GAP_X
        x0 = (content_w - span) / 2
        band = "#f4f6f9" if i % 2 else "#ffffff"
        parts.append(f'<rect x="0" y="{y - 12}" width="{width}" height="{ROW_H}" fill="{band}"/>')
        parts.append(
            f'<text x="{width - 160}" y="{y + BOX_H / 2 + 4}" font-size="11" fill="#6b7280">'
            f"layer {len(rows) - i}</text>"
        )
        for j, pkg in enumerate(row):
            x = x0 + j * (BOX_W + GAP_X)
            pos[pkg] = (x, y)
    counts = imports()
    for a, b in sorted(reduce(set(counts))):
        n = counts[(a, b)]
        if a not in pos or b not in pos:
            continue
        (xa, ya), (xb, yb) = pos[a], pos[b]
        x1, y1 = xa + BOX_W / 2, ya + BOX_H
        x2, y2 = xb + BOX_W / 2, yb
        if yb <= ya:  # same layer (non-independent siblings): side by side
            y1, y2 = ya + BOX_H / 2, yb + BOX_H / 2
            x1, x2 = (xa + BOX_W, xb) if xa < xb else (xa, xb + BOX_W)
        width_px = min(3.0, 0.6 + n / 15)
        parts.append(
            f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="#8792a2" '
            f'stroke-opacity="0.55" stroke-width="{width_px:.1f}" marker-end="url(#a)"/>'
        )
    for pkg, (x, y) in pos.items():
        parts.append(
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="7" fill="#e8eefc" '
            'stroke="#3b5bdb" stroke-width="1.4"/>'
        )
        parts.append(
            f'<text x="{x + BOX_W / 2}" y="{y + 18}" text-anchor="middle" font-size="14" '
            f'font-weight="bold">e3.{escape(pkg)}</text>'
        )
        parts.append(
            f'<text x="{x + BOX_W / 2}" y="{y + 34}" text-anchor="middle" font-size="10.5" '
            f'fill="#374151">{escape(NOTES.get(pkg, ""))}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(draw())
    print(f"wrote {OUT.relative_to(ROOT)}")
