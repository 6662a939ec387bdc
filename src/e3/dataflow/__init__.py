"""Dataflow execution: the task graph, the pure plan, and the scheduler that drives runners.

* :mod:`e3.dataflow.graph` — tasks and their dependencies from a deployed package (pure);
* :mod:`e3.dataflow.plan` — the state machine deciding what may run next (pure);
* :mod:`e3.dataflow.scheduler` — the asyncio loop: cache, runners, refs, records, events.
"""
