"""``python -m e3.sdk export <file.py|module>[:name] <out.zip>``."""

from __future__ import annotations

import sys

from e3.errors import E3Error


def main(argv: list[str]) -> int:
    """Export the package defined in a file or module."""
    if len(argv) != 3 or argv[0] != "export":
        print("usage: python -m e3.sdk export <file.py|module>[:name] <out.zip>", file=sys.stderr)
        return 2
    from e3.sdk.loader import load_one
    from e3.sdk.package import export

    try:
        pkg = load_one(argv[1])
        res = export(pkg, argv[2])
    except E3Error as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return exc.spec.exit_code
    print(f"Exported {res.name}@{res.version} to {argv[2]} ({res.object_count} objects)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
