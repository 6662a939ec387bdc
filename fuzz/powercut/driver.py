"""The traced side of a workload: runs its steps and marks what each one acknowledged.

Run as ``python -m fuzz.powercut.driver STEPS.json ACKS`` under strace (see
:mod:`fuzz.powercut.explore`). Before a step it writes ``begin {json}`` to the
acks file and, once the step's command has returned successfully, ``ack
{json}``: one ``write`` each, which the recorder turns into ops at exactly
that place in the order of file-system operations. An ``ack`` is what a user
was told (the command returned 0); a ``begin`` says the effect may appear from
then on.

Steps (JSON objects):

* ``{"argv": [...], "begin": {...}, "ack": {...}}``: run a command, which must exit 0;
  ``"sha256_of": path`` adds the SHA-256 of that file to the ack (an export's zip);
* ``{"reactive": {"start": [...], "set": [...], "set_payload": {...}, "ack": {...}}}``:
  start a run with ``--json``, and once its first task has started run the set;
* ``{"serve": [...]}``: start an API server; later arguments may say ``{url}``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

_TIMEOUT = 300


class Driver:
    """Runs the steps, writing markers to the acks file."""

    def __init__(self, acks: Path) -> None:
        self.fd = os.open(acks, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.url = ""
        self.server: subprocess.Popen[bytes] | None = None

    def mark(self, kind: str, payload: dict[str, Any] | None) -> None:
        if payload is not None:
            os.write(self.fd, f"{kind} {json.dumps(payload, sort_keys=True)}\n".encode())

    def argv(self, argv: list[str]) -> list[str]:
        return [a.replace("{url}", self.url) for a in argv]

    def run(self, step: dict[str, Any]) -> None:
        if "serve" in step:
            self.serve(step["serve"])
        elif "reactive" in step:
            self.reactive(step["reactive"])
        else:
            self.mark("begin", step.get("begin"))
            proc = subprocess.run(self.argv(step["argv"]), capture_output=True, timeout=_TIMEOUT)
            if proc.returncode != 0:
                sys.exit(f"step {step['argv']} exited {proc.returncode}: {proc.stderr[-500:]!r}")
            ack = step.get("ack")
            if ack is not None and "sha256_of" in step:
                ack = {
                    **ack,
                    "sha256": hashlib.sha256(Path(step["sha256_of"]).read_bytes()).hexdigest(),
                }
            self.mark("ack", ack)

    def reactive(self, spec: dict[str, Any]) -> None:
        """A set while the run's tasks are running (it must be picked up by the same run)."""
        self.mark("begin", spec.get("begin"))
        start = subprocess.Popen(
            self.argv(spec["start"]), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        assert start.stdout is not None
        for line in start.stdout:
            if b'"task_started"' in line or b'"task_completed"' in line:
                break
        self.mark("begin", spec["set_payload"])
        proc = subprocess.run(self.argv(spec["set"]), capture_output=True, timeout=_TIMEOUT)
        if proc.returncode != 0:
            sys.exit(f"reactive set exited {proc.returncode}: {proc.stderr[-500:]!r}")
        self.mark("ack", spec["set_payload"])
        start.stdout.read()
        if start.wait(_TIMEOUT) != 0:
            sys.exit(f"reactive start exited {start.returncode}")
        self.mark("ack", spec.get("ack"))

    def serve(self, argv: list[str]) -> None:
        self.server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.server.stdout is not None
        line = self.server.stdout.readline().decode().strip()
        if "listening on " not in line:
            sys.exit(f"the server did not start: {line!r}")
        self.url = line.rsplit(" ", 1)[1]

    def close(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.wait(_TIMEOUT)
        os.close(self.fd)


def main() -> None:
    steps = json.loads(Path(sys.argv[1]).read_text())
    driver = Driver(Path(sys.argv[2]))
    try:
        for step in steps:
            driver.run(step)
    finally:
        driver.close()


if __name__ == "__main__":
    main()
