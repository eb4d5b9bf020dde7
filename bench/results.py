"""The JSON result file every benchmark can write beside its ``name: value`` lines.

Each bench's ``main()`` takes ``--json PATH`` (``add_json_argument``) and, after printing its
figures, hands them to ``write_json``; ``bench/run.py`` passes a path inside its run's folder
and reads the file back, so figures keep their types (a count stays an integer). No Django here:
the scripts import this before or after setting Django up alike.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--json PATH`` option, the same in every bench."""
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the figures to this JSON file"
    )


def write_json(path: Path | None, figures: Mapping[str, object]) -> None:
    """Write ``figures`` as one JSON object to ``path`` (nothing when no path was given)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(figures), indent=2, ensure_ascii=False, default=str) + "\n")
    print(f"wrote {path}", file=sys.stderr)
