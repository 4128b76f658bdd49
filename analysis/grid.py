"""`grid`: PNG grids of activation-maximization images. Rows and columns are any two of
setting, unit, layer and seed (default rows = settings, columns = units); the others are fixed
by filters. Large layers paginate: out.png becomes out-p1.png, out-p2.png, ...

Labels sit outside the images (columns above, rows at the left, each image's value under
it); images are enlarged by a whole factor with nearest neighbour and share one grey scale,
0-255, as the caption says."""
import math
import textwrap

import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.best import metric_of  # noqa: E402
from analysis.index import (AnalysisError, Shards, check_layer, class_names, default_metric, metrics, open_index,  # noqa: E402
                            paged_output, parse_units)

DIMS = ("setting", "unit", "layer", "seed")


def select(db, args):
    """Rows (setting, unit, layer, seed, shard, dataset, metric value) after the filters."""
    layers = check_layer(db, args.layer) if args.layer or "layer" in (args.rows, args.cols) else \
        check_layer(db, None)[-1:]
    sql = (f"SELECT s.name, r.unit, t.layer, t.seed, r.shard, r.dataset, r.{args.metric_column} "
           "FROM actmax_results r JOIN tasks t ON t.task_key = r.task_key AND t.state = 'done' "
           "JOIN actmax_settings s ON s.setting_id = t.setting_id "
           f"WHERE t.layer IN ({','.join('?' * len(layers))})")
    params = list(layers)
    if args.setting:
        names = setting_names(db, args.setting)
        sql += f" AND s.name IN ({','.join('?' * len(names))})"
        params += names
    if args.seed is not None:
        sql += " AND t.seed = ?"
        params.append(args.seed)
    sql += " ORDER BY t.rowid, s.setting_id, r.unit"
    rows = db.execute(sql, params).fetchall()
    if args.units:
        keep = set(parse_units(args.units))
        rows = [r for r in rows if r[1] in keep]
    if args.first:
        keep = set(sorted({r[1] for r in rows})[:args.first])
        rows = [r for r in rows if r[1] in keep]
    if not rows:
        raise AnalysisError(f"no finished activation-maximization results for layer {', '.join(layers)} "
                            "with these filters")
    return rows


def setting_names(db, values):
    """The settings that --setting values select. A value is one setting's exact name, as the index
    holds it (names such as olah2017+background=0.12,jitter=0.1,flip=true contain commas); only a
    value that is no setting's name is read as a comma-separated list of names."""
    known = {r[0] for r in db.execute("SELECT name FROM actmax_settings")}
    names = []
    for value in values:
        parts = [value] if value in known else value.split(",")
        if any(n not in known for n in parts):
            raise AnalysisError(f"--setting: no setting named {value!r} (have {'; '.join(sorted(known))})")
        names += [n for n in parts if n not in names]
    return names


def label(dim, value, names, layer_of_unit):
    if dim == "unit" and names and layer_of_unit == "fc8":
        return f"{value} {names.get(value, '')}".strip()
    return f"{dim} {value}" if dim in ("unit", "seed") else str(value)


# Layout in pixels. Every label sits outside the images: column labels in a band above the
# tiles, row labels in a band at their left, each tile's value in a strip under it, and the
# caption (what the value is, the one grey scale of the figure) at the bottom.
TOP, VALUE, GAP, CAPTION, CHAR, MIN_WIDTH = 18, 13, 4, 42, 6, 360


def row_lines(text):
    """A row label in lines that fit the left band: setting names split after commas."""
    return [p + ("," if i < len(text.split(",")) - 1 else "") for i, p in enumerate(text.split(","))]


def left_band(row_labels):
    """Width of the band of row labels: the longest line, within 40..240 pixels."""
    return min(240, max(40, CHAR * max(len(line) for lines in row_labels for line in lines) + 10))


def layout(nrows, ncols, tile, left):
    """(width, height) of a page and tile_box(i, j) -> (x0, y0) of the tile's top-left pixel."""
    width = max(MIN_WIDTH, left + ncols * (tile + GAP))  # room for the caption's three lines
    height = TOP + nrows * (tile + VALUE + GAP) + CAPTION
    return width, height, lambda i, j: (left + j * (tile + GAP), TOP + i * (tile + VALUE + GAP))


def enlarged(img, tile):
    """img (uint8, H x W or H x W x 3) as RGB, enlarged by the largest whole factor that fits
    the tile (nearest neighbour: every pixel a sharp square), centred on a tile of grey."""
    rgb = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]
    k = max(1, min(tile // rgb.shape[0], tile // rgb.shape[1]))
    big = np.repeat(np.repeat(rgb, k, axis=0), k, axis=1)[:tile, :tile]
    out = np.full((tile, tile, 3), 128, dtype=np.uint8)
    y, x = (tile - big.shape[0]) // 2, (tile - big.shape[1]) // 2
    out[y:y + big.shape[0], x:x + big.shape[1]] = big
    return out, k


def run(args):
    if args.rows == args.cols or args.rows not in DIMS or args.cols not in DIMS:
        raise AnalysisError(f"--rows and --cols: two different names out of {', '.join(DIMS)}")
    if args.tile < 8:
        raise AnalysisError(f"--tile: at least 8 pixels, got {args.tile}")
    db = open_index(args.results_dir)
    args.metric = args.metric or default_metric(db)
    args.metric_column = metric_of(db, args.metric, "actmax").column
    rows = select(db, args)
    names = class_names(db)
    index = {d: i for i, d in enumerate(DIMS)}
    ri, ci = index[args.rows], index[args.cols]
    # keys in first-seen order (sweep order for layers and settings, ascending units)
    row_keys = list(dict.fromkeys(r[ri] for r in rows))
    col_keys = list(dict.fromkeys(r[ci] for r in rows))
    if args.cols == "unit":
        col_keys.sort()
    if args.rows == "unit":
        row_keys.sort()
    cells = {}
    for r in rows:
        cells.setdefault((r[ri], r[ci]), r)  # first match when a free dimension has several values
    rpages = math.ceil(len(row_keys) / args.max_rows)
    cpages = math.ceil(len(col_keys) / args.max_cols)
    tile = args.tile
    layers = ", ".join(dict.fromkeys(r[2] for r in rows))
    some_layer = rows[0][2]
    row_text = {rv: row_lines(label(args.rows, rv, names, some_layer)) for rv in row_keys}
    left = left_band(row_text.values())
    written = []
    with Shards(args.results_dir) as shards:
        for rp in range(rpages):
            for cp in range(cpages):
                rk = row_keys[rp * args.max_rows:(rp + 1) * args.max_rows]
                ck = col_keys[cp * args.max_cols:(cp + 1) * args.max_cols]
                width, height, box = layout(len(rk), len(ck), tile, left)
                canvas = np.full((height, width, 3), 255, dtype=np.uint8)
                texts = []  # (x, y, text, fontsize, va, ha)
                factor = 1
                for j, cv in enumerate(ck):
                    x0, _ = box(0, j)
                    texts.append((x0 + tile / 2, TOP - 3, label(args.cols, cv, names, some_layer), 7, "bottom", "center"))
                for i, rv in enumerate(rk):
                    _, y0 = box(i, 0)
                    texts.append((4, y0 + tile / 2, "\n".join(row_text[rv]), 7, "center", "left"))
                    for j, cv in enumerate(ck):
                        cell = cells.get((rv, cv))
                        if cell is None:
                            continue
                        x0, y0 = box(i, j)
                        img, factor = enlarged(np.asarray(shards.read(cell[4], cell[5])), tile)
                        canvas[y0:y0 + tile, x0:x0 + tile] = img
                        texts.append((x0 + tile / 2, y0 + tile + 1, f"{cell[6]:.3g}", 7, "top", "center"))
                caption = (f"{args.metric} under each image. One grey scale, 0-255, for every image (none "
                           f"stretched); images enlarged {factor}x, nearest neighbour.")
                lines = textwrap.wrap(caption, max(20, (width - 8) // CHAR))[:3]
                texts.append((4, height - CAPTION + 4, "\n".join(lines), 7, "top", "left"))
                # + 0.01 px: the canvas is the whole pixels of the size in inches, and 2.07 * 100
                # is 206.99999...
                fig = plt.figure(figsize=((width + 0.01) / 100, (height + 0.01) / 100), dpi=100)
                fig.figimage(canvas, 0, 0, origin="upper")
                for x, y, text, size, va, ha in texts:
                    fig.text(x / width, 1 - y / height, text, fontsize=size, va=va, ha=ha, color="black",
                             linespacing=1.1)
                page = rp * cpages + cp
                out = paged_output(args.output, page, rpages * cpages)
                fig.savefig(out, dpi=100)
                plt.close(fig)
                written.append(out)
    print(f"{layers}: {len(row_keys)} {args.rows}s x {len(col_keys)} {args.cols}s "
          f"({args.metric} under each), {len(written)} page{'s' if len(written) > 1 else ''}")
    for w in written:
        print(f"  wrote {w}")
    return 0


def add_parser(sub):
    p = sub.add_parser("grid", help="PNG grid of optimized images: rows = settings, columns = units",
                       description=__doc__)
    p.add_argument("results_dir")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--layer", help="layer (default: the last one with results; all when a dimension is layer)")
    p.add_argument("--rows", default="setting", help=f"dimension of the rows: {', '.join(DIMS)} (default setting)")
    p.add_argument("--cols", default="unit", help="dimension of the columns (default unit)")
    p.add_argument("--units", help="units as ranges, like 0-9,12 (default all)")
    p.add_argument("--first", type=int, help="only the first N units (after --units)")
    p.add_argument("--setting", action="append", metavar="NAME",
                   help="a setting's exact name as the index holds it (repeat for several; a value "
                        "that is no name is read as comma-separated names; default all)")
    p.add_argument("--seed", type=int, help="one seed (default all)")
    p.add_argument("--metric", help="value printed under each image (default score; activation for an "
                                    "index older than schema 1.4): " +
                   ", ".join(k for k, m in metrics().items() if m.technique == "actmax"))
    p.add_argument("--tile", type=int, default=96,
                   help="pixels per tile (default 96: a 32 px image enlarged 3x, nearest neighbour)")
    p.add_argument("--max-cols", type=int, default=32, help="columns per page (default 32)")
    p.add_argument("--max-rows", type=int, default=32, help="rows per page (default 32)")
    p.set_defaults(run=run)
