"""Dataflow runs on disk: their records, their event logs, and requests to cancel them.

Per run, in ``dataflows/<ws>/``:

* ``<runId>.beast2`` — the :class:`~e3.records.dataflow.DataflowRun` record (the
  reference's format): written ``running`` when the run starts and rewritten when
  it ends;
* ``<runId>.events`` — every :class:`~e3.model.events.Event` of the run, one JSON
  object per line, appended as they happen (not fsynced: a log for watchers, not a
  record), so any process can follow a run that another one executes;
* ``<runId>.cancel`` — present while someone asks the run to stop; the engine
  looks for it a few times a second.

A record still saying ``running`` is believed only while the workspace's
dataflow lock is held and it is the workspace's newest record (runs of a
workspace never overlap, and each start closes what a dead engine left, so only
the newest can be going on): otherwise its engine died (killed, crashed, power
cut) and the record is reported, and on the next start rewritten, as
``interrupted``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from e3.base import atomic
from e3.base.names import is_execution_id
from e3.codec import small
from e3.errors import E3Error
from e3.model.events import Event
from e3.model.runs import newest
from e3.records import dataflow as run_record
from e3.records import workspace as ws_record
from e3.records._util import utc_now
from e3.records.dataflow import INTERRUPTED, DataflowRun
from e3.store import locks
from e3.store.repository import RepoStore

EVENTS_SUFFIX = ".events"
CANCEL_SUFFIX = ".cancel"


def write_run(repo: RepoStore, run: DataflowRun) -> None:
    """Write (or rewrite) a run record, atomically and fsynced.

    Renamed into place unsynced, a record could be found empty after a power
    cut (file systems may keep the rename and lose the bytes): ``verify``
    would report it and the run would vanish from ``e3 log``. A run writes
    two or three records, so the fsyncs cost little.
    """
    path = repo.dataflow_run_path(run.workspace, run.run_id)
    atomic.write_bytes(path, run_record.encode(run), durable=repo.durable)
    if run.status != "running":  # its brief form, for listings (see read_brief)
        with contextlib.suppress(OSError):
            _keep_brief(repo, run.workspace, _brief(run), os.stat(path))


def read_run(repo: RepoStore, ws: str, run_id: str) -> DataflowRun | None:
    """A run record as written (``None`` if missing or unreadable)."""
    data = atomic.read_bytes(repo.dataflow_run_path(ws, run_id))
    if not data:
        return None
    try:
        return run_record.decode(data)
    except E3Error:
        return None


def execution_ids_of(repo: RepoStore, ws: str, run_id: str | None) -> dict[str, str]:
    """Task name → execution id in run ``run_id``'s record: where that run found each result.

    Only a hint (see :func:`e3.records.dataflow.execution_ids`): empty when there
    is no such run, or its record is not one the direct reader takes.
    """
    if run_id is None or not is_execution_id(run_id):
        return {}
    data = atomic.read_bytes(repo.dataflow_run_path(ws, run_id))
    if not data:
        return {}
    try:
        ids = run_record.execution_ids(data)
    except small.NotSmall:
        return {}
    return {
        task: eid for task, eid in ids.items() if is_execution_id(eid)
    }  # paths are built of them


def _run_ids(repo: RepoStore, ws: str) -> list[str]:
    try:
        names = os.listdir(repo.dataflows_dir / ws)
    except (FileNotFoundError, NotADirectoryError):
        return []
    suffix = ".beast2"
    return sorted(n[: -len(suffix)] for n in names if n.endswith(suffix))


def list_runs(
    repo: RepoStore, ws: str, *, last: int | None = None, brief: bool = False
) -> list[DataflowRun]:
    """Every run of a workspace (or its ``last`` newest), oldest first.

    Runs whose engine died show as ``interrupted``. ``last`` matters: a record
    holds every task's execution (a 10,000-task run's decodes in about 0.2 s), and
    the history only grows, so a command that needs the newest run (the one that
    may be running) must not decode them all. ``brief``: without per-task detail
    (see :func:`read_brief`), for listings.
    """
    ids = newest(_run_ids(repo, ws), last)
    read = read_brief if brief else read_run
    runs = [r for r in (read(repo, ws, i) for i in ids) if r is not None]
    return _with_liveness(repo, ws, runs)


def read_brief(repo: RepoStore, ws: str, run_id: str) -> DataflowRun | None:
    """A run record without per-task detail: no input or output versions, no task executions.

    What a listing shows (times, outcome, counts) from a small record kept in
    ``cache/runs/<ws>/``: a 10,000-task run's full record takes about 0.15 s to
    decode, and ``e3 log`` lists twenty. A finished record is never changed in
    place (a rewrite renames a new file over it), so the cached form is named
    after the identity of the file it was made from (inode, size, modification
    time) and a record that is not that file is decoded again. Records still
    ``running`` are not cached. Deleting ``cache/`` loses nothing.
    """
    record = repo.dataflow_run_path(ws, run_id)
    try:
        st = os.stat(record)
    except OSError:
        return None
    with contextlib.suppress(E3Error):
        cached = atomic.read_bytes(_brief_path(repo, ws, run_id, st))
        brief = run_record.decode(cached) if cached else None
        if brief is not None and brief.run_id == run_id:
            return brief
    try:
        with open(record, "rb") as f:  # the bytes and the identity of one file
            st, data = os.fstat(f.fileno()), f.read()
        run = _brief(run_record.decode(data))
    except (OSError, E3Error):
        return None
    if run.status != "running":
        _keep_brief(repo, ws, run, st)
    return run


def _keep_brief(repo: RepoStore, ws: str, brief: DataflowRun, st: os.stat_result) -> None:
    """Cache ``brief`` for the record file ``st`` describes (best effort: it is a cache)."""
    with contextlib.suppress(E3Error):
        path = _brief_path(repo, ws, brief.run_id, st)
        atomic.write_bytes(path, run_record.encode(brief), durable=False)


def forget_brief(repo: RepoStore, ws: str, run_id: str) -> None:
    """Remove the cached brief forms of a run whose record is deleted."""
    folder = repo.root / "cache" / "runs" / ws
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            if name.startswith(f"{run_id}-"):
                with contextlib.suppress(OSError):
                    os.unlink(folder / name)


def _brief(run: DataflowRun) -> DataflowRun:
    return replace(run, input_versions={}, output_versions=None, task_executions={})


def _brief_path(repo: RepoStore, ws: str, run_id: str, st: os.stat_result) -> Path:
    name = f"{run_id}-{st.st_ino}-{st.st_size}-{st.st_mtime_ns}.beast2"
    return repo.root / "cache" / "runs" / ws / name


def find_run(repo: RepoStore, run_id: str, *, brief: bool = False) -> DataflowRun | None:
    """The run with this id, in whichever workspace it ran (``brief``: see :func:`read_brief`)."""
    if not is_execution_id(run_id):
        return None
    try:
        workspaces = sorted(os.listdir(repo.dataflows_dir))
    except FileNotFoundError:
        return None
    read = read_brief if brief else read_run
    for ws in workspaces:
        run = read(repo, ws, run_id)
        if run is not None:
            return _with_liveness(repo, ws, [run])[0]
    return None


def _with_liveness(repo: RepoStore, ws: str, runs: list[DataflowRun]) -> list[DataflowRun]:
    """``runs`` with every ``running`` record whose engine is gone shown as interrupted."""
    if not any(r.status == "running" for r in runs):
        return runs
    ids = _run_ids(repo, ws)
    newest = ids[-1] if ids else None
    held = bool(locks.holders(repo.dataflow_lock_path(ws)))
    out: list[DataflowRun] = []
    for r in runs:
        if r.status == "running" and (not held or r.run_id != newest):
            # An engine writes its final record before it lets go of the lock: the run may
            # have ended between the first read and the look at the lock, so read it again.
            fresh = read_run(repo, ws, r.run_id)
            r = fresh if fresh is not None and fresh.status != "running" else _interrupted(r)
        out.append(r)
    return out


def _interrupted(run: DataflowRun) -> DataflowRun:
    return replace(run, status="interrupted", error=INTERRUPTED)


def close_interrupted_runs(repo: RepoStore, ws: str) -> list[str]:
    """Rewrite the ``running`` record a dead engine left as ``interrupted``.

    Called by a run that holds the workspace's dataflow lock: no other run can
    be going on. Every start does this, so only the newest record can be left
    ``running``: one record is read, however long the history. Returns the ids
    rewritten.
    """
    ids = _run_ids(repo, ws)
    data = atomic.read_bytes(repo.dataflow_run_path(ws, ids[-1])) if ids else b""
    try:
        if not data or run_record.decode_status(data) != "running":
            return []
        run = run_record.decode(data)
    except E3Error:
        return []  # unreadable: listed as such, nothing to close
    write_run(repo, replace(_interrupted(run), completed_at=utc_now()))
    return [run.run_id]


def set_current_run(repo: RepoStore, ws: str, run_id: str) -> None:
    """Record ``run_id`` as the workspace's last complete run (exports carry its results).

    This replaces the deployment record, so it is fsynced: left empty by a
    power cut, the workspace would read as not deployed.
    """
    data = atomic.read_bytes(repo.workspace_state_path(ws))
    if not data:
        return
    state = ws_record.decode(data)
    atomic.write_bytes(
        repo.workspace_state_path(ws),
        ws_record.encode(replace(state, current_run_id=run_id)),
        durable=repo.durable,
    )


# ── event logs ──────────────────────────────────────────────────────────────


#: One encoder for every event line: ``json.dumps`` with options builds a new one per call.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def events_path(repo: RepoStore, ws: str, run_id: str) -> Path:
    """``dataflows/<ws>/<runId>.events``."""
    return repo.dataflows_dir / ws / f"{run_id}{EVENTS_SUFFIX}"


class EventWriter:
    """Appends a run's events to its log; :meth:`flush` makes them visible to readers.

    Lines are buffered and written in one ``write`` per flush (the scheduler
    flushes on every turn of its loop), so a follower sees each event within a
    turn, and a quick run pays one system call per batch of events, not per event.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644
        )
        self._pending: list[str] = []

    def __call__(self, event: Event) -> None:
        """Buffer one event."""
        self._pending.append(_COMPACT.encode(event.to_json()) + "\n")

    def flush(self) -> None:
        """Write the buffered lines (a full disk loses them, never the run)."""
        if self._pending and self._fd is not None:
            data, self._pending = "".join(self._pending).encode(), []
            with contextlib.suppress(OSError):
                atomic.write_all(self._fd, data)

    def close(self) -> None:
        """Flush and close."""
        self.flush()
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class EventReader:
    """Reads a run's event log incrementally: each :meth:`poll` returns the events added since.

    A line is taken only once its newline is there, so a reader never sees half an
    event; lines that do not parse (a torn tail after a crash) are skipped.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pos = 0
        self._partial = b""

    def poll(self) -> list[Event]:
        """Events appended since the last call (empty if none, or no log yet)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                data = f.read()
        except FileNotFoundError:
            return []
        self._pos += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        return list(_parse(lines))


def _parse(lines: list[bytes]) -> Iterator[Event]:
    for obj in _json_lines(lines):
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            yield Event.from_json(obj)


def _json_lines(lines: list[bytes]) -> list[Any]:
    """The JSON value of each line that has one.

    All at once when every line is one value (a 10,000-task run's log took 0.17 s
    line by line, most of it in the calls); otherwise (a torn tail, damage) line
    by line, skipping those that do not parse.
    """
    whole = [line for line in lines if line.strip()]
    with contextlib.suppress(ValueError):
        values = json.loads(b"[" + b",".join(whole) + b"]")
        if isinstance(values, list) and len(values) == len(whole):
            return values
    out: list[Any] = []
    for line in whole:
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


# ── cancel requests ─────────────────────────────────────────────────────────


def cancel_path(repo: RepoStore, ws: str, run_id: str) -> Path:
    """``dataflows/<ws>/<runId>.cancel``."""
    return repo.dataflows_dir / ws / f"{run_id}{CANCEL_SUFFIX}"


def request_cancel(repo: RepoStore, ws: str, run_id: str) -> None:
    """Ask the engine running ``run_id`` (in any process) to stop it."""
    atomic.write_bytes(cancel_path(repo, ws, run_id), b"", durable=False)


def cancel_requested(repo: RepoStore, ws: str, run_id: str) -> bool:
    """Whether someone asked this run to stop."""
    return os.path.exists(cancel_path(repo, ws, run_id))


def clear_cancel(repo: RepoStore, ws: str, run_id: str) -> None:
    """Remove a run's cancel request once it has ended."""
    with contextlib.suppress(OSError):
        os.unlink(cancel_path(repo, ws, run_id))
