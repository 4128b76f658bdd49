"""Read-only access to a results directory's index."""
import os
import sqlite3


class AnalysisError(Exception):
    """Bad input: names what is wrong (directory, layer, metric)."""


def open_index(results_dir):
    path = os.path.join(results_dir, "index.sqlite")
    if not os.path.isfile(path):
        raise AnalysisError(f"{results_dir}: no index.sqlite here (not a vizsweep results directory?)")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    except sqlite3.DatabaseError as e:
        raise AnalysisError(f"{path}: not a vizsweep index ({e})")
    return db


def actmax_layers(db):
    return [r[0] for r in db.execute("SELECT DISTINCT layer FROM tasks WHERE technique='actmax' ORDER BY rowid")]


def check_layer(db, layer):
    layers = actmax_layers(db)
    if not layers:
        raise AnalysisError("the index holds no activation-maximization results")
    if layer is not None and layer not in layers:
        raise AnalysisError(f"no activation-maximization results for layer {layer!r} (have {', '.join(layers)})")
    return [layer] if layer else layers
