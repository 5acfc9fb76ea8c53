"""The `smplify` command: a thin shell over the Python API.

Each subcommand lives beside the code it drives and registers itself through
``add_parser(subparsers)``; heavy imports happen only when a subcommand runs.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: module providing ``add_parser`` for each subcommand, in help order
SUBCOMMANDS = (
    "smplify.demo",
    "smplify.fit_cli",
    "smplify.keypoints.cli",
    "smplify.doctor",
    "smplify.benchmark.cli",
    "priors.train",
    "smplify.regressor.cli",
    "smplify.pseudogt",
)


class CliError(Exception):
    """An error the user caused; printed as one line, exit status 2."""


def one_line(exc: BaseException) -> str:
    """An exception as one line for the user: its message's first line, else its class name."""
    msg = str(exc).strip()
    return msg.splitlines()[0] if msg else exc.__class__.__name__


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="smplify", description="Fit an SMPL-family body model to a photo.")
    parser.add_argument("--version", action="version", version=f"smplify {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in SUBCOMMANDS:
        try:
            importlib.import_module(mod).add_parser(sub)
        except ImportError:  # a part that is not installed yet: its command is simply absent
            continue
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # run the imported module's main, not this __main__ copy: subcommands raise smplify.cli.CliError,
    # which is a different class from __main__.CliError
    from smplify.cli import main as _main

    sys.exit(_main())
