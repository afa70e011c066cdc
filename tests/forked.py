"""Many fresh interpreters for the price of one: a `python -c` process runs `setup` once, then forks a
child for each case, which runs `case_code` with `case` bound and reports the `outcome` it binds.

Each case starts from the parent's state, never from another case's: what one case imports is gone
for the next. The parent imports only what `setup` does (and json, os, sys), so a probe of what gets
imported sees no more than in a `python -c` of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
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


def fresh_runs(setup: str, case_code: str, cases: list, cwd: Path, timeout: float = 300) -> list:
    """The outcome of each case, in order. A case that raises gives {"crashed": "<error>"}."""
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, setup, case_code, json.dumps(cases)],
        capture_output=True, text=True, cwd=cwd, timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout.strip(), result.stderr[-3000:]
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(outcomes) == len(cases), result.stderr[-3000:]
    return outcomes
