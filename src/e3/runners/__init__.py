"""Task runners: how an argv computed from a task's command IR gets executed.

* :mod:`e3.runners.base` — the :class:`~e3.runners.base.Runner` interface and the registry;
* :mod:`e3.runners.process` — one process per task (any command);
* :mod:`e3.runners.east_warm` — East functions on a pool of warm east-py workers.

A runner plugs in by name (built-ins, or the ``e3.runners`` entry-point group)
without the scheduler knowing anything about it.
"""
