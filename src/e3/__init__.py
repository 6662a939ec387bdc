"""e3: a durable, content-addressed dataflow engine for East programs.

Authoring API (see :mod:`e3.sdk`): ``e3.input``, ``e3.task``,
``e3.custom_task``, ``e3.package``, ``e3.export``. They are loaded on first
use, so importing ``e3`` (as the CLI does) stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["custom_task", "export", "input", "package", "task"]

_SDK_NAMES = frozenset(__all__)


def __getattr__(name: str) -> Any:
    if name == "sdk":
        import e3.sdk

        return e3.sdk
    if name in _SDK_NAMES:
        from e3 import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'e3' has no attribute {name!r}")
