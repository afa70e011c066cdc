"""Command line: `synapse-ml-track train|check|score|report|deploy`.

One module per subcommand, each with `add_parser(subcommands)` and `run(args) -> int`. Every
subcommand fails the same way: a problem the user can fix is one redacted `error:` line and its
exit code (errors.JobError), anything else one line and exit 1, with the traceback under --debug.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from synapse_ml_track.cli import check, deploy, report, score, train
from synapse_ml_track.cli.common import configure_logging
from synapse_ml_track.errors import JobError, failure_line
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.tracking import abandoned_transfers

SUBCOMMANDS = (train, check, score, report, deploy)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synapse-ml-track", description=__doc__.splitlines()[0])
    subcommands = parser.add_subparsers(dest="command", required=True)
    for subcommand in SUBCOMMANDS:
        subcommand.add_parser(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.redactor = redactor = Redactor()
    configure_logging(args.log_level, redactor)
    try:
        return args.run(args)
    except JobError as exc:
        print(f"error: {redactor.redact(str(exc))}", file=sys.stderr, flush=True)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last resort: one readable line, traceback on request
        detail = redactor.redact(failure_line(exc) if str(exc).strip() else "")
        print(f"error: unexpected {type(exc).__name__}: {detail[:500]}", file=sys.stderr)
        if args.debug:
            import traceback

            print(redactor.redact(traceback.format_exc()), file=sys.stderr)
        else:
            print("(run again with --debug for the traceback)", file=sys.stderr)
        return 1


def run(argv: Sequence[str] | None = None) -> NoReturn:
    """The process entry point (the console script, jobs/*.py): exit with main's code. When the job
    gave up on artifact transfers at their deadline, their threads are not waited for
    (tracking/abandoned_transfers.py): the job has printed its line and ended its run FAILED."""
    code = main(argv)
    if abandoned_transfers.any_abandoned():
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
