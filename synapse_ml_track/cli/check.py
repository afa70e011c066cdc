"""`synapse-ml-track check`: the preflight every job runs first, on its own."""

from __future__ import annotations

import argparse

from synapse_ml_track.cli.common import add_common, load_config


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("check", help="check config, credentials, tracking server and registry, then exit")
    add_common(parser)
    parser.add_argument("--registered-model-name")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from synapse_ml_track.entrypoint import set_global_tracking_uri
    from synapse_ml_track.tracking.session import open_session

    config = load_config(args)
    session = open_session(config, args.redactor)
    set_global_tracking_uri(session.uri)
    if session.credential_source:
        print(f"ok: Azure AD token acquired with the {session.credential_source} credential")
    print(f"ok: tracking server {session.uri} answers; experiment {session.experiment_id} is readable")
    if config.tracking.register:
        print(f"ok: model registry is readable (model name {config.tracking.registered_model_name})")
    return 0
