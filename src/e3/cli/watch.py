"""``e3 watch``: rebuild, redeploy (and rerun) a package on every save of its source.

The development loop of the reference: each version of the file is built in a
fresh interpreter (``python -m e3.sdk export … --sources``), so an edit to a
module it imports is never hidden by a copy cached from the previous build, and
the build says which of the user's files it imported, which are then watched
too. The package is imported (replacing the previous build of the same
``name@version``: this is a development loop), deployed to the workspace
(created if needed) and, with ``--start``, its dataflow started and shown as
``e3 start`` shows it. A mistake in the file is one ``file:line: …`` error, and
watching goes on; the next good save recovers.

Bursts of saves (an editor writing a file in steps, a formatter on save) are
grouped: a version is built once no file changed for ``--debounce`` ms. A
change that arrives while a run is going waits for its end, or with
``--abort-on-change`` cancels it. Everything goes through the porcelain, so
``<repo>`` may be a server URL. Ctrl-C cancels a running dataflow and ends with
exit code 130.

File events come from ``watchfiles`` (inotify on Linux), imported only by this
command. Directories are watched rather than files, because editors that save
by writing a new file and renaming it over the old one replace the inode a
file watch would follow.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from e3.cli.context import Context, require_file
from e3.cli.registry import add_command
from e3.errors import EXIT_INTERRUPTED, E3Error
from e3.model.runs import start_options

if TYPE_CHECKING:
    from e3.model.protocol import Repository, Run


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``e3 watch``."""
    w = add_command(sub, "watch")
    w.add_argument("repo")
    w.add_argument("workspace")
    w.add_argument("source", type=Path, metavar="package.py", help="file defining the package")
    w.add_argument("--start", action="store_true", help="run the dataflow after each deploy")
    w.add_argument(
        "--abort-on-change",
        action="store_true",
        help="cancel a running dataflow when a new version arrives (default: let it finish)",
    )
    w.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="NAME|GLOB",
        help="with --start: run only matching tasks and the tasks they need (repeatable)",
    )
    w.add_argument("--concurrency", type=int, default=4, metavar="N", help="tasks at once")
    w.add_argument(
        "--debounce",
        type=int,
        default=100,
        metavar="MS",
        help="build once no file changed for this long (default 100 ms)",
    )
    w.set_defaults(handler=cmd_watch)


def stamp() -> str:
    """The wall-clock time, for the lines that say what the loop did."""
    return time.strftime("%H:%M:%S")


# ── building one version ────────────────────────────────────────────────────


@dataclass
class Build:
    """One attempt at building the package: the zip, or the error, and the files it read."""

    zip: Path | None
    name: str = ""
    version: str = ""
    error: str = ""
    sources: set[Path] = field(default_factory=set)


def build(source: Path, workdir: Path, last_sources: Iterable[Path] = ()) -> Build:
    """Build ``source`` in a fresh interpreter (its mistakes become :attr:`Build.error`).

    The compiled caches of ``last_sources`` (the package's own modules, from the
    last build) are removed first: Python trusts a ``.pyc`` whose source has
    the same size and modification second, so an edit of one digit saved
    within the second of the last build would otherwise be built from the old
    code.
    """
    out, listing = workdir / "package.zip", workdir / "sources.json"
    for stale in (out, listing):
        stale.unlink(missing_ok=True)
    for module in last_sources:
        with contextlib.suppress(OSError, ValueError):
            Path(importlib.util.cache_from_source(str(module))).unlink(missing_ok=True)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "e3.sdk",
            "export",
            str(source),
            str(out),
            "--sources",
            str(listing),
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    sources: set[Path] = set()
    package: dict[str, str] = {}
    try:
        data = json.loads(listing.read_text(encoding="utf-8"))
        sources = {Path(s) for s in data.get("sources", [])}
        package = data.get("package") or {}
    except (OSError, ValueError):
        pass
    if proc.returncode != 0 or not package:
        lines = [s for s in proc.stderr.strip().splitlines() if s.strip()]
        error = lines[-1] if lines else f"the build ended with exit code {proc.returncode}"
        return Build(None, error=error.removeprefix("Error: "), sources=sources)
    return Build(out, package["name"], package["version"], sources=sources)


# ── file events ─────────────────────────────────────────────────────────────


class Watcher:
    """Reports saves of a set of files, grouped into bursts, through :attr:`changes`.

    A thread runs ``watchfiles`` over the files' directories; :meth:`watch`
    changes the set (restarting the thread only when the directories change).
    """

    def __init__(self, debounce_ms: int) -> None:
        self.debounce_ms = max(1, debounce_ms)
        self.changes: queue.Queue[set[Path]] = queue.Queue()
        self._files: frozenset[str] = frozenset()
        self._dirs: frozenset[str] = frozenset()
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def files(self) -> frozenset[str]:
        """The files watched now."""
        return self._files

    def watch(self, files: set[Path]) -> None:
        """Watch exactly ``files`` from now on."""
        self._files = frozenset(os.path.realpath(f) for f in files)
        dirs = frozenset(os.path.dirname(f) for f in self._files)
        if dirs != self._dirs or self._thread is None:
            self.close()
            self._dirs = dirs
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(sorted(dirs), self._stop), name="e3-watch", daemon=True
            )
            self._thread.start()

    def _run(self, dirs: list[str], stop: threading.Event) -> None:
        import watchfiles

        def wanted(change: object, path: str) -> bool:
            return os.path.realpath(path) in self._files or os.path.abspath(path) in self._files

        existing = [d for d in dirs if os.path.isdir(d)]
        for batch in watchfiles.watch(
            *existing,
            watch_filter=wanted,
            debounce=max(1000, 4 * self.debounce_ms),
            step=self.debounce_ms,
            stop_event=stop,
            recursive=False,
            raise_interrupt=False,
        ):
            self.changes.put({Path(p) for _, p in batch})

    def next_change(self, timeout: float) -> set[Path] | None:
        """The next burst of changed files (with any that follow at once), or ``None``."""
        try:
            changed = self.changes.get(timeout=timeout)
        except queue.Empty:
            return None
        while True:
            try:
                changed |= self.changes.get_nowait()
            except queue.Empty:
                return changed

    def close(self) -> None:
        """Stop the watching thread."""
        if self._stop is not None:
            self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self._stop = self._thread = None


# ── the loop ────────────────────────────────────────────────────────────────


class WatchLoop:
    """Build, import, deploy and run each version; follow runs while watching for the next."""

    def __init__(
        self, ctx: Context, repo: Repository, args: argparse.Namespace, workdir: Path
    ) -> None:
        self.ctx = ctx
        self.repo = repo
        self.args = args
        self.workdir = workdir
        self.source = args.source.resolve()
        self.out: TextIO = ctx.out.stdout
        self.watcher = Watcher(args.debounce)
        self.known: set[Path] = {self.source}
        self.run: Run | None = None
        #: Whether the change that ends the current run was already announced.
        self.announced = False

    def say(self, text: str, *, error: bool = False) -> None:
        """One line of the loop's own story (errors on stderr)."""
        stream = self.ctx.out.stderr if error else self.out
        self.out.flush()
        stream.write(f"[{stamp()}] {text}\n")
        stream.flush()

    def deploy_version(self) -> None:
        """Build the current version; import, deploy and start it if it built."""
        b = build(self.source, self.workdir, self.known)
        self.known |= b.sources
        self.watcher.watch(self.known)
        if b.zip is None:
            self.say(f"Error: {b.error}", error=True)
            self.say("Watching for the next save…")
            return
        try:
            self.repo.package_import(b.zip, force=True)
            self.repo.workspace_deploy(self.args.workspace, f"{b.name}@{b.version}")
            self.say(f"Deployed {b.name}@{b.version} to workspace '{self.args.workspace}'")
            if self.args.start:
                self.run = self.repo.start(
                    self.args.workspace,
                    filter=self.args.filter,
                    concurrency=self.args.concurrency,
                )
        except E3Error as exc:
            self.say(f"Error: {exc.message}", error=True)
        if self.run is None:
            self.say("Watching for changes…")

    def follow_run(self) -> set[Path] | None:
        """Show the running dataflow until it ends; the changes seen meanwhile, if any."""
        from e3.cli.start import choose_view, print_summary

        assert self.run is not None
        run, view = self.run, choose_view(self.ctx)
        pending: set[Path] | None = None
        offset, cancelled = 0, False
        while True:
            events, running = run.events_since(offset, wait=getattr(view, "TICK", 0.2))
            offset += len(events)
            for e in events:
                view(e)
            if hasattr(view, "tick"):
                view.tick()
            changed = self.watcher.next_change(0)
            if changed:
                pending = (pending or set()) | changed
                if self.args.abort_on_change and not cancelled:
                    view.close()
                    self.say(f"Changed: {self._names(changed)}: cancelling the running dataflow")
                    self.announced = True
                    run.cancel()
                    cancelled = True
            if not running and not events:
                break
        outcome = run.wait()
        view.close()
        print_summary(self.out, outcome)
        self.out.flush()
        self.run = None
        if pending is None:
            self.say("Watching for changes…")
        return pending

    def _names(self, paths: set[Path]) -> str:
        return ", ".join(sorted(p.name for p in paths))

    def loop(self) -> None:
        """Run until interrupted."""
        self.watcher.watch(self.known)
        self.out.write(f"Watching {self.args.source} and the modules it imports; Ctrl-C stops\n")
        self.deploy_version()
        while True:
            changed = self.follow_run() if self.run is not None else None
            while changed is None:
                changed = self.watcher.next_change(0.5)
            if not self.announced:
                self.say(f"Changed: {self._names(changed)}")
            self.announced = False
            self.deploy_version()

    def stop(self) -> None:
        """Cancel a running dataflow (waiting for it to stop) and stop watching."""
        self.watcher.close()
        if self.run is not None:
            run, self.run = self.run, None
            run.cancel()
            with contextlib.suppress(E3Error, KeyboardInterrupt):
                run.wait(timeout=30)


def cmd_watch(ctx: Context, args: argparse.Namespace) -> int:
    """Watch a package file; rebuild, redeploy (and rerun) on every save."""
    from e3.cli.start import terminate_as_interrupt

    require_file(args.source)
    start_options(filter=args.filter, concurrency=args.concurrency)  # refuse bad flags now
    repo = ctx.repository(args.repo)
    with tempfile.TemporaryDirectory(prefix="e3-watch-") as tmp:
        loop = WatchLoop(ctx, repo, args, Path(tmp))
        try:
            with terminate_as_interrupt():
                loop.loop()
        except KeyboardInterrupt:
            loop.out.write("\n")
            loop.say("Stopped.")
            return EXIT_INTERRUPTED
        finally:
            loop.stop()
    return 0
