"""Read-only access to a results directory: the index (SQLite) and the shards (HDF5).

Every query binds its values as parameters; the only names spliced into SQL come from fixed
tables in this package. The index is opened read-only (mode=ro), so the scripts can run while a
sweep is writing it (WAL lets readers in; a busy timeout covers the moments of a checkpoint).
"""
import os
import re
import sqlite3
import struct
import time
import zlib

# How messages name a technique's results; a technique not listed is named as in the index.
TECHNIQUE_NAMES = {"actmax": "activation-maximization", "invert": "inversion", "fgsm": "FGSM",
                   "featuremaps": "feature-map"}


class AnalysisError(Exception):
    """Bad input: names what is wrong (directory, layer, metric, setting)."""


def open_index(results_dir):
    path = os.path.join(results_dir, "index.sqlite")
    if not os.path.isdir(results_dir):
        raise AnalysisError(f"{results_dir}: no such directory")
    if not os.path.isfile(path):
        raise AnalysisError(f"{results_dir}: no index.sqlite here (not a vizsweep results directory?)")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    except sqlite3.DatabaseError as e:
        raise AnalysisError(f"{path}: not a vizsweep index ({e})")
    if row is None or not str(row[0]).startswith("1."):
        raise AnalysisError(f"{path}: schema version {row[0] if row else 'missing'}, these scripts read 1.x")
    return db


SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results_schema.sql")
NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class Metric:
    """One metric as the index declares it (the `metrics` table, results_schema.sql)."""

    def __init__(self, name, technique, result_table, column, aggregate, higher, unit, description):
        self.name, self.technique, self.result_table, self.column = name, technique, result_table, column
        self.aggregate, self.higher, self.unit, self.description = aggregate, bool(higher), unit, description

    def sql(self, alias="r"):
        """The SQL aggregate over the result rows of one setting."""
        if self.aggregate == "fooled":  # over the correctly classified images
            return (f"CAST(SUM({alias}.{self.column} AND {alias}.clean_pred = {alias}.true_label) AS REAL) / "
                    f"NULLIF(SUM({alias}.clean_pred = {alias}.true_label), 0)")
        return f"AVG({alias}.{self.column})"


def metrics(db=None):
    """{name: Metric} in declaration order: the index's own `metrics` table, or, for an index
    written before schema 1.2 (or db None), the declarations of results_schema.sql. Names that
    reach SQL are checked to be plain identifiers and real columns of a result table."""
    source, declared_here = db, True
    try:
        if db is None:
            raise sqlite3.OperationalError("no index")
        rows = db.execute("SELECT name, technique, result_table, column_name, aggregate, higher_is_better, unit, "
                          "description FROM metrics ORDER BY rowid").fetchall()
    except sqlite3.OperationalError:
        declared_here = False
        source = sqlite3.connect(":memory:")
        with open(SCHEMA) as f:
            # The runner fills the technique lists in from its registry (`vizsweep schema`);
            # the declarations read here need none of them.
            source.executescript(re.sub(r"/\* @techniques[^*]*\*/", "technique", f.read()))
        rows = source.execute("SELECT name, technique, result_table, column_name, aggregate, higher_is_better, unit, "
                              "description FROM metrics ORDER BY rowid").fetchall()
    out = {}
    for row in rows:
        m = Metric(*row)
        if not (NAME.match(m.technique) and NAME.match(m.result_table) and NAME.match(m.column)) or \
                m.aggregate not in ("mean", "fooled"):
            raise AnalysisError(f"metrics: the index declares metric {m.name!r} oddly "
                                f"({m.technique}, {m.result_table}.{m.column}, {m.aggregate})")
        # Any technique's result table: one with task_key rows (runner/techniques/ fills them).
        cols = {c[1] for c in source.execute(f"PRAGMA table_info({m.result_table})")}
        if not declared_here and db is not None:
            # results_schema.sql's declarations over an older index: only the metrics whose
            # columns that index has (a run migrates it and adds the others).
            have = {c[1] for c in db.execute(f"PRAGMA table_info({m.result_table})")}
            if m.column not in have:
                continue
            cols &= have
        if "task_key" not in cols:
            raise AnalysisError(f"metrics: {m.name!r} reads table {m.result_table}, which is not a result table "
                                "of this index")
        if m.column not in cols:
            raise AnalysisError(f"metrics: {m.name!r} reads {m.result_table}.{m.column}, which the index lacks")
        out[m.name] = m
    return out


def default_metric(db=None):
    """What best, grid and atlas rank activation maximization by unless told: the
    interpretability score (schema 1.4), or the activation for an index without it."""
    return "score" if "score" in metrics(db) else "activation"


def layers_of(db, technique):
    """Layers with finished results of a technique, in sweep order."""
    return [r[0] for r in db.execute(
        "SELECT layer FROM tasks WHERE technique = ? AND state = 'done' GROUP BY layer ORDER BY MIN(rowid)",
        (technique,))]


def check_layer(db, layer, technique="actmax"):
    """[layer] if it has results, every layer with results if layer is None; else a clear error."""
    layers = layers_of(db, technique)
    what = TECHNIQUE_NAMES.get(technique, technique)
    if not layers:
        planned = db.execute("SELECT COUNT(*) FROM tasks WHERE technique = ?", (technique,)).fetchone()[0]
        raise AnalysisError(f"the index holds no {what} results" +
                            (f" yet ({planned} tasks planned, none done)" if planned else " (none in the sweep)"))
    if layer is not None and layer not in layers:
        raise AnalysisError(f"no {what} results for layer {layer!r} (have {', '.join(layers)})")
    return [layer] if layer else layers


def class_names(db):
    return dict(db.execute("SELECT class_id, name FROM classes").fetchall())


def sweep_info(db):
    row = db.execute("SELECT name, model_path FROM sweeps ORDER BY sweep_id DESC LIMIT 1").fetchone()
    return {"name": row[0], "model": row[1]} if row else {"name": "?", "model": "?"}


def parse_units(text):
    """'0-9,12' -> [0..9, 12]; a plain count 'N' is handled by the caller."""
    out = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise AnalysisError(f"--units: {text!r} is not a list of ranges like 0-9,12")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise AnalysisError(f"--units: range {part.strip()!r} runs backwards")
        out.extend(range(lo, hi + 1))
    return sorted(set(out))


class Shards:
    """Opens shard files on first use and keeps them open; paths stay inside the results dir.

    A running sweep keeps its shard open for writing and flushes it after every task, before the
    task is committed to the index, so every dataset the index names is on disk. Readers open
    shards without HDF5's file lock (the writer holds it) and, should they meet metadata the
    writer is updating at that moment, reopen the file and read again."""

    RETRIES = 8

    def __init__(self, results_dir):
        import h5py
        self._h5py = h5py
        self.root = os.path.realpath(results_dir)
        self.files = {}

    def file(self, shard):
        if shard not in self.files:
            path = os.path.realpath(os.path.join(self.root, shard))
            if os.path.commonpath([path, self.root]) != self.root:
                raise AnalysisError(f"index names a shard outside the results directory: {shard!r}")
            try:
                try:
                    self.files[shard] = self._h5py.File(path, "r", locking=False)
                except TypeError:  # h5py before 3.5: HDF5_USE_FILE_LOCKING (set in analysis/__init__)
                    self.files[shard] = self._h5py.File(path, "r")
            except OSError as e:
                raise AnalysisError(f"{shard}: cannot open shard ({e})")
        return self.files[shard]

    def _retry(self, shard, get):
        for attempt in range(self.RETRIES):
            try:
                return get(self.file(shard))
            except (KeyError, OSError, AnalysisError) as e:
                if attempt == self.RETRIES - 1:
                    if isinstance(e, AnalysisError):
                        raise
                    raise AnalysisError(f"{shard}: {e} (run `vizsweep verify`)")
                f = self.files.pop(shard, None)
                if f is not None:
                    f.close()
                time.sleep(0.05 * (attempt + 1))

    def read(self, shard, dataset):
        return self._retry(shard, lambda f: f[dataset][()])

    def group(self, shard, dataset):
        """The task group that holds a dataset."""
        return self._retry(shard, lambda f: f[dataset.rsplit("/", 1)[0]])

    def close(self):
        for f in self.files.values():
            f.close()
        self.files = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def safe_name(text):
    """A file-name-safe form of a layer or setting name (no path separators, no dots first)."""
    s = re.sub(r"[^A-Za-z0-9_=.-]", "_", str(text))
    return ("_" + s) if s.startswith(".") or not s else s


def write_png(path, image):
    """Writes a uint8 H x W (gray) or H x W x 3 (RGB) array as PNG with zlib only."""
    import numpy as np
    a = np.ascontiguousarray(image, dtype=np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    color = 0 if a.ndim == 2 else 2
    h, w = a.shape[:2]
    raw = b"".join(b"\x00" + a[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def paged_output(path, page, pages):
    """out.png -> out-p2.png when a figure spans several pages."""
    if pages == 1:
        return path
    root, ext = os.path.splitext(path)
    return f"{root}-p{page + 1}{ext or '.png'}"


def save_figure_and_table(fig, output, csv_path, header, rows):
    """Writes the figure to `output` (110 dpi) and, when `csv_path` is given, the table as CSV."""
    import csv
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    print(f"\nwrote {output}")
    if csv_path:
        with open(csv_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
