#!/usr/bin/env python3
"""Applies tansu-store.sql (beside this file) to a Tansu 0.6.0 SQLite store.

    scripts/tansu-store.py PATH/TO/tansu.db

Used by scripts/services.sh for the local broker and by the fault suite for its private
one. Idempotent. The broker keeps the file open in WAL mode, so this runs beside it and
waits out the broker's own writes. See docs/BROKER.md for why each repair is needed.
"""
import pathlib
import sqlite3
import sys


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    db = pathlib.Path(sys.argv[1])
    if not db.is_file():
        print(f"tansu-store: no store at {db}", file=sys.stderr)
        return 1
    script = (pathlib.Path(__file__).parent / "tansu-store.sql").read_text()
    connection = sqlite3.connect(db, timeout=30)
    try:
        tables = {
            row[0]
            for row in connection.execute("select name from sqlite_master where type = 'table'")
        }
        missing = {"header", "watermark", "topic", "topition"} - tables
        if missing:
            print(
                f"tansu-store: {db} has no {', '.join(sorted(missing))} table (not a Tansu 0.6 store?)",
                file=sys.stderr,
            )
            return 1
        connection.executescript(script)
    finally:
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
