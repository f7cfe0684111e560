"""``python -m formats --write-schema``: bring schemas/recipe.schema.json's format parts in line
with the registry; ``--check``: list the differences (exit 1 when there are any)."""

from __future__ import annotations

import argparse
import json
import sys

import formats
from formats import schema


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m formats")
    p.add_argument("--write-schema", action="store_true", help="rewrite the owned schema parts")
    p.add_argument("--check", action="store_true", help="list schema parts that differ")
    args = p.parse_args(argv)
    if args.write_schema:
        changed = schema.write(formats.all_formats())
        print(f"{schema.SCHEMA}: {'rewritten' if changed else 'already current'}")
        return 0
    lines = schema.differences(
        json.loads(schema.SCHEMA.read_text(encoding="utf-8")), formats.all_formats()
    )
    for line in lines:
        print(line, file=sys.stderr)
    if not args.check:
        print(formats.markdown())
    return 1 if lines else 0


if __name__ == "__main__":
    raise SystemExit(main())
