"""Work run off the event loop leaves nothing of its frames behind when it fails."""

from __future__ import annotations

import asyncio
import threading
import weakref

import pytest

from e3.errors import UsageError
from e3.server.http import blocking


class _Held:
    """Stands for an east-py value a request was holding when it failed."""


def test_a_failing_job_drops_its_locals_on_its_own_thread() -> None:
    refs: list[weakref.ref[_Held]] = []
    threads: list[int] = []

    def work() -> None:
        held = _Held()
        refs.append(weakref.ref(held))
        threads.append(threading.get_ident())
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise UsageError("no such thing") from exc

    async def main() -> BaseException:
        try:
            await blocking(work)
        except UsageError as exc:
            return exc
        raise AssertionError("the error did not come back")

    exc = asyncio.run(main())
    assert threads and threads[0] != threading.get_ident()
    assert refs[0]() is None  # freed on the worker, though the error is still alive here
    assert isinstance(exc.__cause__, KeyError)
    assert str(exc).startswith("no such thing")


def test_a_result_comes_back_untouched() -> None:
    held = _Held()
    assert asyncio.run(blocking(lambda: held)) is held
    with pytest.raises(ZeroDivisionError):
        asyncio.run(blocking(lambda: 1 // 0))
