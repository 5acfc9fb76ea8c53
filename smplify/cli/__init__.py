"""The `smplify` command: a thin shell over the Python API, and the only place argparse lives.

Each subcommand is a module of this package that registers itself through
``add_parser(subparsers)``; heavy imports happen only when a subcommand runs. No module
outside this package imports from it (tests/test_layout.py checks the import graph).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import one_line  # noqa: F401  (the subcommands' one-line errors)

#: module providing ``add_parser`` for each subcommand, in help order
SUBCOMMANDS = (
    "smplify.cli.demo",
    "smplify.cli.fit",
    "smplify.cli.detect",
    "smplify.cli.doctor",
    "smplify.cli.evaluate",
    "smplify.cli.train_prior",
    "smplify.cli.train_regressor",
    "smplify.cli.pseudogt",
)


class CliError(Exception):
    """An error the user caused; printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="smplify", description="Fit an SMPL-family body model to a photo.")
    parser.add_argument("--version", action="version", version=f"smplify {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in SUBCOMMANDS:  # a subcommand that fails to import fails loudly, it does not vanish
        importlib.import_module(mod).add_parser(sub)
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
