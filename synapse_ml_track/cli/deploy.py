"""`synapse-ml-track deploy`: build the wheel and publish the jobs, the pipelines and the scoring pipeline's
schedule trigger to a Synapse workspace.

Of the common flags it takes --log-level and --debug: --config is the file it uploads, and the
configuration flags (--set, --tracking-uri, --experiment-*) would change nothing the jobs read.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from synapse_ml_track.cli.common import add_logging
from synapse_ml_track.cli.report import positive_int
from synapse_ml_track.deploy import plan
from synapse_ml_track.deploy import synapse as synapse_target


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "deploy", help="build the wheel and publish jobs, pipelines and triggers to a Synapse workspace"
    )
    parser.add_argument("--workspace", required=True, help="Synapse workspace name (Bicep output synapseWorkspaceName)")
    parser.add_argument(
        "--storage-account", required=True, help="the workspace's ADLS Gen2 account (Bicep output dataLakeAccountName)"
    )
    parser.add_argument("--filesystem", default="synapse", help="filesystem in that account (default: %(default)s)")
    parser.add_argument(
        "--prefix",
        default="synapse-ml-track",
        help="folder in the filesystem that receives the uploads (default: %(default)s)",
    )
    parser.add_argument("--spark-pool", default="mltrack", help="Spark 3.5 pool the jobs run on (default: %(default)s)")
    parser.add_argument(
        "--config",
        required=True,
        type=Path,
        help="job configuration file (YAML or JSON) to upload; it is validated first",
    )
    parser.add_argument(
        "--model-uri",
        help="model the score job loads (default: the champion, "
        "models:/<tracking.registered_model_name>@<gate.champion_alias>)",
    )
    parser.add_argument(
        "--executor-size", choices=sorted(plan.EXECUTOR_SIZES), default="Small",
        help="driver and executor size (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--num-executors", type=positive_int, default=2, help="executors per job (default: %(default)s)"
    )
    parser.add_argument(
        "--pool-parameters", type=Path,
        help="Bicep parameters file the pool was deployed with, for the sizing check of --dry-run "
        f"(default: {plan.POOL_PARAMETERS} in the source); a real deploy reads the pool itself",
    )  # fmt: skip
    parser.add_argument(
        "--source", type=Path, help="source checkout with setup.cfg and jobs/ (default: the one this package runs from)"
    )
    parser.add_argument(
        "--start-triggers", action="store_true",
        help="start the schedule triggers (the nightly scoring) after publishing them; without it a new trigger "
        "is created stopped, since a started trigger runs real jobs (one already started keeps running)",
    )  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="print every step of the plan and call nothing")
    add_logging(parser)
    parser.set_defaults(run=run)


def request_of(args: argparse.Namespace) -> plan.DeployRequest:
    fields = plan.DeployRequest.__dataclass_fields__
    return plan.DeployRequest(**{name: getattr(args, name) for name in fields})


def run(args: argparse.Namespace) -> int:
    request = request_of(args)
    deploy_plan = plan.make_plan(request)
    if args.dry_run:
        plan.check_sizing(plan.pool_shape_from_parameters(request), request)
        print("\n".join(plan.describe_plan(deploy_plan)))
        return 0
    target = synapse_target.SynapseTarget(request.workspace, request.storage_account, request.filesystem)
    try:
        plan.preflight(target, request)
        plan.execute(deploy_plan, target, progress=lambda line: print(line, flush=True))
        print(plan.notebook_install_line(deploy_plan))
    except plan.DeployError as exc:
        if args.debug and exc.__cause__ is not None:
            # The Azure error behind the one line, whole: its response and the credentials tried.
            cause = "".join(traceback.format_exception(exc.__cause__))
            print(args.redactor.redact(cause), file=sys.stderr)
        raise
    return 0
