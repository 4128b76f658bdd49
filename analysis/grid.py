"""`grid`: a PNG of activation-maximization images, rows = settings, columns = units."""
import os

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from analysis.index import AnalysisError, check_layer, open_index  # noqa: E402


def images(db, results_dir, layer, units):
    """{setting: {unit: (uint8 image, activation)}} for the first `units` units of a layer."""
    rows = db.execute(
        "SELECT s.name, r.unit, r.shard, r.dataset, r.final_activation FROM actmax_results r "
        "JOIN tasks t ON t.task_key = r.task_key AND t.state = 'done' JOIN actmax_settings s ON s.setting_id = t.setting_id "
        "WHERE t.layer = ? ORDER BY s.setting_id, r.unit", (layer,)).fetchall()
    keep = sorted({r[1] for r in rows})[:units]
    out, files = {}, {}
    for setting, unit, shard, dataset, act in rows:
        if unit not in keep:
            continue
        if shard not in files:
            files[shard] = h5py.File(os.path.join(results_dir, shard), "r")
        out.setdefault(setting, {})[unit] = (files[shard][dataset][()], act)
    for f in files.values():
        f.close()
    return out, keep


def class_names(db):
    return dict(db.execute("SELECT class_id, name FROM classes").fetchall())


def run(args):
    db = open_index(args.results_dir)
    layer = check_layer(db, args.layer)[0] if args.layer else check_layer(db, None)[-1]
    data, units = images(db, args.results_dir, layer, args.units)
    if not data:
        raise AnalysisError(f"layer {layer}: no finished activation-maximization results yet")
    names = class_names(db) if layer == "fc8" else {}
    settings = list(data)
    tile = args.tile
    fig = plt.figure(figsize=(len(units) * tile / 100, len(settings) * tile / 100), dpi=100)
    for i, setting in enumerate(settings):
        for j, unit in enumerate(units):
            ax = fig.add_axes([j / len(units), 1 - (i + 1) / len(settings), 1 / len(units), 1 / len(settings)])
            ax.axis("off")
            if unit in data[setting]:
                img, act = data[setting][unit]
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
                label = f"{names.get(unit, unit)}" + (f"\n{setting}" if j == 0 else "") + f"\n{act:.2f}"
                ax.text(2, 2, label, fontsize=6, color="yellow", va="top", ha="left")
    fig.savefig(args.output, dpi=100)
    plt.close(fig)
    print(f"{args.output}: {layer}, {len(settings)} settings x {len(units)} units")
    return 0


def add_parser(sub):
    p = sub.add_parser("grid", help="PNG grid of optimized images: rows = settings, columns = units")
    p.add_argument("results_dir")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--layer", help="layer (default: the last one with results)")
    p.add_argument("--units", type=int, default=10, help="first N units (default 10)")
    p.add_argument("--tile", type=int, default=96, help="pixels per tile (default 96)")
    p.set_defaults(run=run)
