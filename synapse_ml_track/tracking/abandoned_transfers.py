"""Artifact transfers the job stopped waiting for at their deadline and that still run in this process.

The AML plugin uploads through a ThreadPoolExecutor, and CPython joins every executor worker when the
interpreter exits (concurrent/futures/thread.py `_python_exit`), so a job that gave up on its storage
account would print its error and then go on uploading into its FAILED run for as long as
azure-storage's timeouts and retries allow. The process entry point (`synapse_ml_track.cli.run`) asks
here and ends the process without that wait. Imports nothing heavy: the command line imports it.
"""

from __future__ import annotations

import threading

_abandoned: list[threading.Thread] = []
_lock = threading.Lock()


def abandon(worker: threading.Thread) -> None:
    """The job no longer waits for this transfer's thread."""
    with _lock:
        _abandoned.append(worker)


def any_abandoned() -> bool:
    """Whether the job gave up on a transfer. Not whether its thread still runs: that thread may have
    ended while the plugin's executor threads it started go on (a later batch refused, say), and those
    are what the interpreter would join at exit (seen once in CI, a job process alive 240 s after its
    error line)."""
    with _lock:
        return bool(_abandoned)
