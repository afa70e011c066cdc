"""Many fresh interpreters for the price of one: a `python -c` process runs `setup` once, then forks a
child for each case, which runs `case_code` with `case` bound and reports the `outcome` it binds.

Each case starts from the parent's state, never from another case's: what one case imports is gone
for the next. The parent imports only what `setup` does (and json, os, sys), so a probe of what gets
imported sees no more than in a `python -c` of its own.
"""

from __future__ import annotations

import atexit
import json
import subprocess
import sys
import tempfile
from pathlib import Path

RUNNER = r"""
import json, os, sys
setup, case_code, cases = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
namespace = {"__name__": "__probe__"}
exec(setup, namespace)
outcomes = []
for case in cases:
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            namespace["case"] = case
            exec(case_code, namespace)
            outcome = namespace["outcome"]
        except BaseException as exc:
            import traceback

            traceback.print_exc()
            outcome = {"crashed": f"{type(exc).__name__}: {exc}"}
        sys.stdout.flush()
        sys.stderr.flush()
        with os.fdopen(write_end, "w") as out:
            out.write(json.dumps(outcome))
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as result:
        text = result.read()
    os.waitpid(pid, 0)
    outcomes.append(json.loads(text) if text else {"crashed": "the case's process died"})
print("\n" + json.dumps(outcomes))
"""


class FreshRuns:
    """The runner, started at once: `outcomes()` waits for it. Started early (see start_probes in
    tests/conftest.py), it runs on the other core while the tests before the ones needing it run."""

    def __init__(self, setup: str, case_code: str, cases: list, cwd: Path, timeout: float = 300):
        self.cases, self.timeout = cases, timeout
        self._stdout, self._stderr = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
        self._process = subprocess.Popen(
            [sys.executable, "-c", RUNNER, setup, case_code, json.dumps(cases)],
            stdout=self._stdout, stderr=self._stderr, text=True, cwd=cwd,
        )  # fmt: skip
        self._outcomes: list | None = None
        atexit.register(self._stop)

    def outcomes(self) -> list:
        """The outcome of each case, in order. A case that raises gives {"crashed": "<error>"}."""
        if self._outcomes is None:
            try:
                code = self._process.wait(timeout=self.timeout)
            finally:
                self._stop()
            stdout, stderr = (self._read(stream) for stream in (self._stdout, self._stderr))
            assert code == 0 and stdout.strip(), stderr[-3000:]
            outcomes = json.loads(stdout.strip().splitlines()[-1])
            assert len(outcomes) == len(self.cases), stderr[-3000:]
            self._outcomes = outcomes
        return self._outcomes

    def _stop(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    @staticmethod
    def _read(stream) -> str:
        stream.seek(0)
        return stream.read()
