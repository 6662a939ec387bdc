"""The runners e3 offers: built-in ones and plugins, assembled into a registry.

Kept apart from the interface (:mod:`e3.runners.base`) so that the interface
imports no implementation: a runner module imports the interface, never the
other way round.
"""

from __future__ import annotations

import os
import re
import sys

from e3.runners.base import Runner, RunnerRegistry

#: The plugins' entry-point group, as a section header of an ``entry_points.txt``.
_GROUP = "e3.runners"
_GROUP_HEADER = re.compile(rb"^[ \t]*\[[ \t]*e3\.runners[ \t]*\]", re.MULTILINE)


def default_registry(
    *,
    isolation: str = "warm",
    max_workers: int = 4,
    guardian: object | None = None,
    cluster: str | None = None,
) -> RunnerRegistry:
    """The built-in runners, plus any from the ``e3.runners`` entry-point group.

    ``isolation="process"`` leaves the warm East runner out, so every task
    runs in a process of its own. ``cluster`` (``tcp://host:port`` or
    ``local:N``) puts the Dask runner first: it accepts every command, so every
    task runs on the cluster's workers (with ``isolation`` applied there).
    """
    from e3.runners.guardian import Guardian

    guard = guardian if isinstance(guardian, Guardian) else Guardian()
    reg = RunnerRegistry(load_plugins=_load_plugins)
    if not isinstance(guardian, Guardian):  # ours: stop it with the registry
        reg.closers.append(guard.close)
    if isolation != "process":

        def warm() -> Runner:
            # Imported when a task first needs it: a fully cached run never does.
            from e3.runners.east_warm import WarmEastRunner

            return WarmEastRunner(max_workers=max_workers, guardian=guard)

        reg.register("east-warm", warm, first=True)

    def process() -> Runner:
        from e3.runners.process import ProcessRunner

        return ProcessRunner(guardian=guard)

    reg.register("process", process)
    if cluster is not None:
        from e3.runners.dask import dask_runner

        runner = dask_runner(cluster, isolation=isolation)
        reg.register("dask", lambda: runner, first=True)
    return reg


def _load_plugins(reg: RunnerRegistry) -> None:
    if not may_have_plugins(sys.path):
        return
    from importlib.metadata import entry_points

    for ep in entry_points(group=_GROUP):
        reg.register(ep.name, ep.load(), first=True)


def may_have_plugins(path: list[str]) -> bool:
    """Whether a distribution on ``path`` may declare an ``e3.runners`` entry point.

    Asked before :mod:`importlib.metadata` is imported: importing it (email,
    zipfile, csv) and parsing every installed distribution's entry points took
    25 to 35 ms, on the way to the first task of every run, with no plugin
    installed. This looks for the group's header in each ``entry_points.txt``
    instead (a directory listing and a few small reads). What it cannot look
    into, such as a zip file on the path, counts as a maybe.
    """
    for entry in path:
        where = entry or "."
        try:
            with os.scandir(where) as listing:
                infos = [e.name for e in listing if e.name.endswith((".dist-info", ".egg-info"))]
        except NotADirectoryError:
            return True
        except OSError:
            continue  # missing or unreadable: importlib.metadata finds nothing there either
        for info in infos:
            try:
                with open(os.path.join(where, info, "entry_points.txt"), "rb") as f:
                    if _GROUP_HEADER.search(f.read()):
                        return True
            except OSError:
                continue
    return False
