"""Command line: `synapse-ml-track train|check|score|report|deploy`.

One module per subcommand, each with `add_parser(subcommands)` and `run(args) -> int`. Every
subcommand fails the same way: a problem the user can fix is one redacted `error:` line and its
exit code (errors.JobError), anything else one line and exit 1, with the traceback under --debug.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from synapse_ml_track.cli import check, deploy, report, score, train
from synapse_ml_track.cli.common import configure_logging
from synapse_ml_track.errors import JobError, failure_line
from synapse_ml_track.redaction import Redactor

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


if __name__ == "__main__":
    sys.exit(main())
