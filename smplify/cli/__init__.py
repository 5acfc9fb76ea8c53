"""The `smplify` command: a thin shell over the Python API, and the only place argparse lives.

Each subcommand is a module of this package that registers itself through
``add_parser(subparsers)``; heavy imports happen only when a subcommand runs. No module
outside this package imports from it (tests/test_layout.py checks the import graph).
"""
from __future__ import annotations

import argparse
import importlib
import re
import sys

from ..errors import one_line  # noqa: F401  (the subcommands' one-line errors)

#: module providing ``add_parser`` for each subcommand, in help order
SUBCOMMANDS = (
    "smplify.cli.demo",
    "smplify.cli.fit",
    "smplify.cli.detect",
    "smplify.cli.doctor",
    "smplify.cli.evaluate",
    "smplify.cli.evaluate_video",
    "smplify.cli.realcapture",
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
    return accept_number_lists(parser)


#: argparse reads a value starting with '-' as an option unless it is one number ("-5"); a list of numbers
#: such as "--bbox -500,-500,1500,2500" is a value too (no option of ours looks like a number)
NUMBERS = re.compile(r"^-\d+$|^-\d*\.\d+$|^-?[0-9.]+([eE][-+]?[0-9]+)?(,\s*-?[0-9.]+([eE][-+]?[0-9]+)?)+$")


def accept_number_lists(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Let ``parser`` and its subcommands take comma-separated numbers starting with '-' as values, and
    say a bad argument in one line (``error: smplify fit: argument --focal: invalid float value: 'abc'
    (smplify fit --help)``, exit status 2) instead of argparse's usage block."""
    parser._negative_number_matcher = NUMBERS

    def error(message: str, parser=parser):
        parser.exit(2, f"error: {parser.prog}: {' '.join(str(message).split())} (see {parser.prog} --help)\n")

    parser.error = error
    for action in parser._actions:
        for sub in (getattr(action, "choices", None) or {}).values() if isinstance(action, argparse._SubParsersAction) else ():
            accept_number_lists(sub)
    return parser


def check_out(args) -> None:
    """An ``--out`` given as '' (it would silently mean the current folder): :class:`CliError`."""
    out = getattr(args, "out", None)
    if out is not None and not str(out).strip():
        raise CliError("--out is empty: name an output path (use --out . for the current folder)")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        check_out(args)
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
