"""`exemplars`: each unit's natural exemplars, the dataset images that drive it hardest, as a
PNG grid: one row per unit, its top-k crops left to right (strongest first), and with --bottom
its bottom-k after them. A crop is the unit's receptive field at its strongest position,
widened to at least MIN_CROP pixels where the field is smaller (conv1's 3 px say little to an
eye), on the image the shard stores at the model's input size.

Labels sit outside the crops (the unit at the left, each crop's activation under it); crops
are enlarged by a whole factor with nearest neighbour and keep their own grey levels, 0-255,
as the caption says. Large layers paginate: out.png becomes out-p1.png, out-p2.png, ..."""
import math

import numpy as np

from analysis.index import AnalysisError, Shards, class_names, open_index, paged_output, parse_units

MIN_CROP = 10


def has_exemplars(db):
    return db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'exemplars'").fetchone()[0] > 0 and \
        db.execute("SELECT COUNT(*) FROM exemplar_results r JOIN tasks t ON t.task_key = r.task_key "
                   "AND t.state = 'done' LIMIT 1").fetchone()[0] > 0


def exemplar_layers(db):
    """Layers with exemplars, in the order the model computes them (deepest last)."""
    if not has_exemplars(db):
        planned = db.execute("SELECT COUNT(*) FROM tasks WHERE technique = 'exemplars'").fetchone()[0] \
            if db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'tasks'").fetchone()[0] else 0
        raise AnalysisError("the index holds no exemplars" +
                            (f" yet ({planned} tasks planned, none done)" if planned else " (no exemplars section in the sweep)"))
    rows = db.execute("SELECT layer, MIN(rowid) FROM exemplar_results GROUP BY layer ORDER BY MIN(rowid)").fetchall()
    return [r[0] for r in rows]


def lists(db, layer, units=None):
    """{unit: {'top': [row, ...], 'bottom': [...]}} for a layer, best first; a row is
    (rank, image_id, source, activation, y, x, box_y0, box_y1, box_x0, box_x1, shard, dataset)."""
    out = {}
    for r in db.execute("SELECT unit, kind, rank, image_id, source, activation, y, x, box_y0, box_y1, box_x0, box_x1, "
                        "shard, dataset FROM exemplars WHERE layer = ? ORDER BY unit, kind, rank", (layer,)):
        if units is not None and r[0] not in units:
            continue
        out.setdefault(r[0], {"top": [], "bottom": []})[r[1]].append(r[2:])
    return out


def crop(shards, row, min_side=MIN_CROP):
    """The receptive-field crop of a list row as uint8 H x W (or H x W x 3)."""
    image = np.asarray(shards.read(row[10], row[11]))
    h, w = image.shape[:2]
    y0, y1, x0, x1 = row[6], row[7], row[8], row[9]

    def widen(a, b, size):
        if b - a >= min(min_side, size):
            return a, b
        grow = min(min_side, size) - (b - a)
        a = max(0, a - grow // 2)
        b = min(size, a + min(min_side, size))
        return b - min(min_side, size), b

    y0, y1 = widen(y0, y1, h)
    x0, x1 = widen(x0, x1, w)
    return image[y0:y1, x0:x1]


def enlarge(a, side):
    """Nearest-neighbour enlargement by a whole factor to at least `side` pixels, centred on a
    side x side canvas of mid grey when the crop is not square."""
    f = max(1, math.ceil(side / max(a.shape[0], a.shape[1])))
    big = np.repeat(np.repeat(a, f, axis=0), f, axis=1)
    canvas = np.full((max(side, big.shape[0]), max(side, big.shape[1])) + big.shape[2:], 128, np.uint8)
    oy, ox = (canvas.shape[0] - big.shape[0]) // 2, (canvas.shape[1] - big.shape[1]) // 2
    canvas[oy:oy + big.shape[0], ox:ox + big.shape[1]] = big
    return canvas


def run(args):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    db = open_index(args.results_dir)
    layers = exemplar_layers(db)
    layer = args.layer or layers[-1]
    if layer not in layers:
        raise AnalysisError(f"--layer: no exemplars for layer {layer!r} (have {', '.join(layers)})")
    want = set(parse_units(args.units)) if args.units else None
    by_unit = lists(db, layer, want)
    if not by_unit:
        raise AnalysisError(f"--units: none of {args.units} has exemplars in {layer}")
    units = sorted(by_unit)
    names = class_names(db)
    kinds = ["top", "bottom"] if args.bottom else ["top"]
    if args.bottom and not any(by_unit[u]["bottom"] for u in units):
        raise AnalysisError("--bottom: the sweep kept no bottom exemplars (set exemplars.bottom: true)")
    k = max(len(by_unit[u][kind]) for u in units for kind in kinds)
    cols = k * len(kinds)
    pages = math.ceil(len(units) / args.rows_per_page)
    written = []
    with Shards(args.results_dir) as shards:
        for page in range(pages):
            part = units[page * args.rows_per_page:(page + 1) * args.rows_per_page]
            fig, axes = plt.subplots(len(part), cols, figsize=(1.1 * cols + 1.4, 1.25 * len(part) + 0.9), squeeze=False)
            for i, unit in enumerate(part):
                for j in range(cols):
                    ax = axes[i][j]
                    ax.set_xticks([]), ax.set_yticks([])
                    kind, r = kinds[j // k], j % k
                    rows = by_unit[unit][kind]
                    if r >= len(rows):
                        ax.axis("off")
                        continue
                    a = enlarge(crop(shards, rows[r]), args.tile)
                    ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
                    ax.set_xlabel(f"{rows[r][3]:.3g}", fontsize=7, labelpad=2)
                    if i == 0:
                        ax.set_title(f"{kind} {r + 1}", fontsize=8)
                name = names.get(unit) if layer == "fc8" else None
                axes[i][0].set_ylabel(f"unit {unit}" + (f"\n{name}" if name else ""), fontsize=8, rotation=0,
                                      ha="right", va="center", labelpad=6)
            fig.suptitle(f"{layer}: natural exemplars, receptive-field crops (widened to {MIN_CROP} px at least), "
                         "gray 0-255 per crop; activation under each", fontsize=9)
            fig.tight_layout(rect=(0, 0, 1, 0.97))
            path = paged_output(args.output, page, pages)
            fig.savefig(path, dpi=args.dpi)
            plt.close(fig)
            written.append(path)
    print(f"wrote {', '.join(written)}: {len(units)} units of {layer} x {cols} exemplars")
    return 0


def add_parser(sub):
    p = sub.add_parser("exemplars", help="grid of each unit's natural exemplars (units x top-k crops)", description=__doc__)
    p.add_argument("results_dir")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--layer", help="layer (default: the deepest with exemplars)")
    p.add_argument("--units", help="units, e.g. 0-15,20 (default all)")
    p.add_argument("--bottom", action="store_true", help="also the bottom-k, after the top-k")
    p.add_argument("--rows-per-page", type=int, default=32, help="units per page (default 32)")
    p.add_argument("--tile", type=int, default=96, help="crop side in pixels after enlarging (default 96)")
    p.add_argument("--dpi", type=int, default=100)
    p.set_defaults(run=run)
