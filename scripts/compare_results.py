#!/usr/bin/python3
"""Whether two results directories of one sweep hold the same results: every row of every
table of the index equal (timings, hosts, attempts and shard file names aside), and every HDF5
dataset a row names byte-identical (compared by SHA-1). For checking that a change leaves
outputs as they were: run one sweep with the binary before and after, into two directories.

  /usr/bin/python3 scripts/compare_results.py RESULTS_A RESULTS_B

Prints one line per table ("same" or "DIFF" with the first differing rows); exit 0 when all are
the same, 1 otherwise, 2 when either is not a results directory.

--common-columns compares the columns both indexes have, and prints each column only one of
them has with its distinct values: for directories written by two versions whose schema
differs by new columns (a new version's columns at their defaults are then the whole
difference)."""
import argparse
import hashlib
import os
import sqlite3
import sys

import h5py
import numpy as np

# Columns that differ between two runs of the same work.
VOLATILE = {"shard", "hostname", "host", "rank", "attempts", "pid", "worker", "vizsweep_version", "last_error"}


def volatile(column):
    return column in VOLATILE or column.endswith(("_at", "_s", "_seconds")) or column == "seconds"


def columns_of(results):
    """{table: [columns]} of an index."""
    db = sqlite3.connect(f"file:{results}/index.sqlite?mode=ro", uri=True)
    try:
        return {t: [c[1] for c in db.execute(f"PRAGMA table_info({t})")]
                for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()}
    finally:
        db.close()


def rows_of(results, only=None):
    """{table: sorted rows}, each row its (column, value) pairs, datasets replaced by their hash;
    only: {table: columns} to keep (None: all)."""
    db = sqlite3.connect(f"file:{results}/index.sqlite?mode=ro", uri=True)
    out = {}
    try:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            cols = [c[1] for c in db.execute(f"PRAGMA table_info({table})")]
            rows = []
            for r in db.execute(f"SELECT * FROM {table}"):
                rec = []
                for c, v in zip(cols, r):
                    if volatile(c) or (only is not None and c not in only.get(table, ())):
                        continue
                    if c == "dataset" and "shard" in cols and v:
                        with h5py.File(f"{results}/{r[cols.index('shard')]}", "r") as f:
                            v = hashlib.sha1(np.ascontiguousarray(f[v]).tobytes()).hexdigest()
                    rec.append((c, v))
                rows.append(tuple(rec))
            out[table] = sorted(rows, key=repr)
    finally:
        db.close()
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--common-columns", action="store_true",
                   help="compare the columns both have; list the others with their distinct values")
    a = p.parse_args(argv)
    for d in (a.a, a.b):
        if not os.path.isfile(os.path.join(d, "index.sqlite")):
            print(f"compare_results: {d}: no index.sqlite here (not a results directory)", file=sys.stderr)
            return 2
    only = None
    if a.common_columns:
        ca, cb = columns_of(a.a), columns_of(a.b)
        only = {t: set(ca.get(t, [])) & set(cb.get(t, [])) for t in set(ca) | set(cb)}
        for d, mine, other in ((a.a, ca, cb), (a.b, cb, ca)):
            db = sqlite3.connect(f"file:{d}/index.sqlite?mode=ro", uri=True)
            for t, cols in sorted(mine.items()):
                for c in cols:
                    if t in other and c not in other[t]:
                        values = [v for (v,) in db.execute(f"SELECT DISTINCT {c} FROM {t} LIMIT 5")]
                        print(f"only in {d}: {t}.{c}, values {values}")
            db.close()
    ra, rb = rows_of(a.a, only), rows_of(a.b, only)
    differ = 0
    for table in sorted(set(ra) | set(rb)):
        x, y = ra.get(table, []), rb.get(table, [])
        if x == y:
            print(f"same {table}: {len(x)} rows")
            continue
        differ += 1
        first = [(u, v) for u, v in zip(x, y) if u != v][:1]
        print(f"DIFF {table}: {len(x)} and {len(y)} rows; first differing: {first}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
