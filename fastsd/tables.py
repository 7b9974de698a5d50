"""Tidy tables as dicts of equal-length 1-D arrays: CSV and Markdown output."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["write_csv", "read_csv", "to_markdown", "format_value"]


def _rows(table: Mapping[str, ArrayLike]) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
    columns = list(table)
    lengths = {len(np.atleast_1d(table[c])) for c in columns}
    if len(lengths) > 1:
        raise ValueError(f"table columns have different lengths: {sorted(lengths)}")
    return columns, zip(*(np.atleast_1d(table[c]).tolist() for c in columns))


def write_csv(
    path: str | os.PathLike[str],
    table: Mapping[str, ArrayLike],
) -> str | os.PathLike[str]:
    """Write a table (dict of columns) to ``path`` atomically (tmp file + rename)."""
    columns, rows = _rows(table)
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


def read_csv(path: str | os.PathLike[str]) -> dict[str, NDArray[np.str_]]:
    """Read a CSV written by :func:`write_csv` back into a dict of string arrays."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return {}
        cols = list(zip(*reader)) or [()] * len(header)
    return {name: np.asarray(col) for name, col in zip(header, cols)}


def format_value(value: Any, spec: str = "{}") -> str:
    """``spec.format(value)``, without a sign on a value that rounds to zero.

    ``format_value(-0.00004, "{:+.2%}")`` is ``"0.00%"``, not ``"-0.00%"``: a change
    too small to show has no direction.

    Examples
    --------
    >>> format_value(-0.004, "{:+.1f}"), format_value(0.25, "{:+.0%}")
    ('0.0', '+25%')
    """
    text = spec.format(value)
    if text[:1] in "+-":
        digits = text[1:].rstrip("%")
        try:
            if float(digits) == 0.0:
                return text[1:]
        except ValueError:
            pass
    return text


def to_markdown(table: Mapping[str, ArrayLike], formats: Mapping[str, str] | None = None) -> str:
    """A Markdown table; ``formats`` maps column names to format strings (applied by
    :func:`format_value`: no sign on a value that rounds to zero)."""
    formats = formats or {}
    columns, rows = _rows(table)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [format_value(v, formats.get(c, "{}")) for c, v in zip(columns, row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
