"""``python -m e3.sdk export <file.py|module>[:name] <out.zip> [--sources <out.json>]``.

``--sources`` writes, as JSON, the package's name and version (once built) and
every file of the user's own code the build imported: ``e3 watch`` runs this in a
fresh interpreter for each version, so edits to imported modules are never
hidden by modules cached from a previous build, and learns which files to watch.
The file is written even when the build fails (with the files imported so far).
"""

from __future__ import annotations

import json
import sys

from e3.errors import E3Error


def main(argv: list[str]) -> int:
    """Export the package defined in a file or module."""
    sources = None
    if len(argv) == 5 and argv[3] == "--sources":
        sources, argv = argv[4], argv[:3]
    if len(argv) != 3 or argv[0] != "export":
        print(
            "usage: python -m e3.sdk export <file.py|module>[:name] <out.zip> [--sources <json>]",
            file=sys.stderr,
        )
        return 2
    from e3.sdk.loader import load_one, user_sources
    from e3.sdk.package import export

    built: dict[str, str] = {}
    try:
        pkg = load_one(argv[1])
        res = export(pkg, argv[2])
        built = {"name": res.name, "version": res.version, "hash": res.hash}
    except E3Error as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return exc.spec.exit_code
    finally:
        if sources is not None:
            with open(sources, "w", encoding="utf-8") as f:
                json.dump({"package": built, "sources": user_sources()}, f)
    print(f"Exported {res.name}@{res.version} to {argv[2]} ({res.object_count} objects)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
