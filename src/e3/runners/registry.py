"""The runners e3 offers: built-in ones and plugins, assembled into a registry.

Kept apart from the interface (:mod:`e3.runners.base`) so that the interface
imports no implementation: a runner module imports the interface, never the
other way round.
"""

from __future__ import annotations

from e3.runners.base import Runner, RunnerRegistry


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
    from importlib.metadata import entry_points

    for ep in entry_points(group="e3.runners"):
        reg.register(ep.name, ep.load(), first=True)
