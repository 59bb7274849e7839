"""Shared helper of the stage scripts: run one ``llfer`` CLI command and exit with its status."""

import sys

from llfer.cli import main


def run(*argv: str) -> None:
    sys.exit(main(list(argv)))
