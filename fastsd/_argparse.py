"""The command line's argument parser: usage errors as one line.

``fastsd sweep: error: the following arguments are required: config (see
fastsd sweep --help)`` instead of argparse's usage block followed by the
error; ``--help`` still prints the usage.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

__all__ = ["OneLineParser"]


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit status 2);
    its subparsers are of the same class."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see {self.prog} --help)\n")
