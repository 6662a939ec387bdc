r"""Dataset paths: parsing and printing the user syntax, and mapping to ref files.

A dataset path is a tuple of field names from the workspace root, e.g.
``("inputs", "x")``. Users write it as a *keypath* ``.inputs.x`` or, on the
CLI, prefixed by the workspace: ``ws.inputs.x``. Names that are not plain
identifiers are quoted with backticks (```ws.`my field`.x```), with ``\``
escaping a backtick or backslash inside the quotes.

On disk each leaf dataset has a ref file ``data/<seg>/.../<leaf>.ref``.
Segment names are escaped so that no name can climb out of the directory or
collide with another dataset's file (the reference joined raw names with
``/``; a name containing ``/`` broke it). Ordinary names are unchanged.
Pure: no I/O.
"""

from __future__ import annotations

import functools
import re

from e3.base.names import check_field_name, check_workspace_name
from e3.errors import InvalidPath

DatasetPath = tuple[str, ...]

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _split(text: str, what: str) -> list[str]:
    """Split dot-separated segments, honouring backtick quoting."""
    segments: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == "`":
            i += 1
            buf: list[str] = []
            while True:
                if i >= n:
                    raise InvalidPath(f"invalid {what} {text!r}: unterminated backtick quote")
                c = text[i]
                if c == "\\" and i + 1 < n:
                    buf.append(text[i + 1])
                    i += 2
                    continue
                if c == "`":
                    i += 1
                    break
                buf.append(c)
                i += 1
            segments.append("".join(buf))
            if i < n and text[i] != ".":
                raise InvalidPath(f"invalid {what} {text!r}: expected '.' after a quoted name")
        else:
            j = i
            while j < n and text[j] not in ".`":
                j += 1
            if j < n and text[j] == "`":
                raise InvalidPath(f"invalid {what} {text!r}: a backtick must start a segment")
            segments.append(text[i:j])
            i = j
        if i < n:  # at a '.'
            i += 1
            if i == n:
                raise InvalidPath(f"invalid {what} {text!r}: trailing '.'")
    for seg in segments:
        if seg == "":
            raise InvalidPath(f"invalid {what} {text!r}: empty segment")
    return segments


def parse_keypath(text: str) -> DatasetPath:
    """Parse ``.a.b`` (leading dot optional; ``.`` or empty is the root)."""
    body = text[1:] if text.startswith(".") else text
    if body == "":
        return ()
    segs = _split(body, "dataset path")
    for seg in segs:
        check_field_name(seg)
    return tuple(segs)


def parse_workspace_path(text: str) -> tuple[str, DatasetPath]:
    """Parse the CLI form ``ws.a.b`` into ``("ws", ("a", "b"))``."""
    if not text:
        raise InvalidPath("invalid path '': expected <workspace>[.<dataset path>]")
    segs = _split(text, "path")
    ws = check_workspace_name(segs[0])
    for seg in segs[1:]:
        check_field_name(seg)
    return ws, tuple(segs[1:])


def format_segment(name: str) -> str:
    """One segment, quoted with backticks unless it is a plain identifier."""
    if _IDENT_RE.fullmatch(name):
        return name
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def format_keypath(path: DatasetPath) -> str:
    """Print a path as a keypath: ``.a.b`` (the root prints as ``.``). Remembered, as below."""
    return _format_keypath(path if type(path) is tuple else tuple(path))


@functools.lru_cache(maxsize=1 << 16)
def _format_keypath(path: DatasetPath) -> str:
    if not path:
        return "."
    return "".join("." + format_segment(s) for s in path)


def format_workspace_path(workspace: str, path: DatasetPath) -> str:
    """Print ``ws.a.b``."""
    return workspace + "".join("." + format_segment(s) for s in path)


def _escape_file_segment(name: str, is_dir: bool) -> str:
    out = name.replace("%", "%25").replace("/", "%2F").replace("\\", "%5C")
    if out in (".", ".."):
        out = out.replace(".", "%2E")
    if is_dir and out.endswith(".ref"):
        out = out[:-4] + "%2Eref"
    return out


_UNESCAPES = {"%2F": "/", "%5C": "\\", "%2E": ".", "%25": "%"}
_UNESCAPE_RE = re.compile("|".join(_UNESCAPES))


def _unescape_file_segment(name: str) -> str:
    return _UNESCAPE_RE.sub(lambda m: _UNESCAPES[m.group(0)], name)


def ref_relpath(path: DatasetPath) -> str:
    """Relative ref-file path of a leaf dataset under ``workspaces/<ws>/data/``.

    Remembered: a run asks for each of its datasets' paths several times.
    """
    return _ref_relpath(path if type(path) is tuple else tuple(path))


@functools.lru_cache(maxsize=1 << 16)
def _ref_relpath(path: DatasetPath) -> str:
    if not path:
        raise InvalidPath("the workspace root is a tree, not a dataset")
    dirs = [_escape_file_segment(s, True) for s in path[:-1]]
    return "/".join([*dirs, _escape_file_segment(path[-1], False) + ".ref"])


def path_from_ref_relpath(rel: str) -> DatasetPath:
    """Inverse of :func:`ref_relpath`."""
    parts = rel.split("/")
    if not parts[-1].endswith(".ref"):
        raise InvalidPath(f"not a ref file path: {rel!r}")
    parts[-1] = parts[-1][:-4]
    return tuple(_unescape_file_segment(p) for p in parts)


def ref_key(path: DatasetPath) -> str:
    """Key of a dataset in a package's ``refs`` dictionary: ``inputs/x``.

    Segments are joined by ``/`` as in the reference; a ``%`` or ``/`` inside a
    name is percent-escaped so that the key maps back to exactly one path.
    """
    return "/".join(s.replace("%", "%25").replace("/", "%2F") for s in path)


def path_from_ref_key(key: str) -> DatasetPath:
    """Inverse of :func:`ref_key`."""
    return tuple(s.replace("%2F", "/").replace("%25", "%") for s in key.split("/"))
