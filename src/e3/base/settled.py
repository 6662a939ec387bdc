"""A hint that a workspace's next run will find every task in the cache: file identities only.

``e3 start`` starts its first warm East worker before it has even imported the
engine, so that the first task does not wait for east-py's imports. A run that
finds every task cached never uses that worker: it costs a Python start-up and
east-py's imports (about 0.2 s of CPU on this project's 2-core machines) beside
a command that takes 0.25 s. A run that ends with every task up to date leaves
``workspaces/<ws>/settled``: the identity (inode, modification time) of the
workspace's state file and of its inputs-changed marker as the run left them.
If both are still the same when the next ``e3 start`` begins, nothing was
deployed and no input was set since, so it starts no worker ahead of need.

It is only a hint: a wrong one costs the first task the worker's start-up
(as with ``E3_EARLY_WORKER=0``), never a result. Reading it costs two ``stat``
calls and one small read, and this module imports only the standard library,
because it runs before anything else is imported.
"""

from __future__ import annotations

import contextlib
import os

#: The hint's file, in the workspace's directory.
SETTLED_FILE = "settled"
#: The marker a set input touches (see ``e3.core.workspaces``).
INPUTS_MARKER = "inputs-changed"


def _identity(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "-"
    return f"{st.st_ino}.{st.st_mtime_ns}"


def signature(root: str | os.PathLike[str], ws: str) -> str:
    """What the workspace's state file and inputs marker are now, as one line."""
    base = os.path.join(os.fspath(root), "workspaces")
    state = _identity(os.path.join(base, f"{ws}.beast2"))
    marker = _identity(os.path.join(base, ws, INPUTS_MARKER))
    return f"{state} {marker}\n"


def mark(root: str | os.PathLike[str], ws: str) -> None:
    """Record that the workspace is up to date now (best effort, not synced: a hint).

    Written beside and renamed into place, so a reader never sees half of it.
    """
    path = os.path.join(os.fspath(root), "workspaces", ws, SETTLED_FILE)
    staged = f"{path}.{os.getpid()}.partial"
    try:
        with open(staged, "w") as f:
            f.write(signature(root, ws))
        os.replace(staged, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(staged)


def looks_settled(root: str | os.PathLike[str], ws: str) -> bool:
    """Whether nothing was deployed or set in the workspace since a run left it up to date."""
    path = os.path.join(os.fspath(root), "workspaces", ws, SETTLED_FILE)
    try:
        with open(path) as f:
            recorded = f.read(200)
    except (OSError, UnicodeDecodeError):
        return False
    return recorded == signature(root, ws)
