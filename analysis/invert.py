"""`invert`: reconstructions of each input image from the representation of each layer (Mahendran
& Vedaldi), rows = images, first column the input, then one column per layer in network order,
with the normalized reconstruction error under each."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.index import AnalysisError, Shards, check_layer, open_index, parse_units  # noqa: E402


def run(args):
    db = open_index(args.results_dir)
    layers = check_layer(db, None, "invert")
    if args.layers:
        want = args.layers.split(",")
        for w in want:
            if w not in layers:
                raise AnalysisError(f"--layers: no inversion results for layer {w!r} (have {', '.join(layers)})")
        layers = [x for x in layers if x in want]
    names = [r[0] for r in db.execute("SELECT name FROM invert_settings ORDER BY setting_id")]
    setting = args.setting or names[0]
    if setting not in names:
        raise AnalysisError(f"--setting: no inversion setting named {setting!r} (have {', '.join(names)})")
    rows = db.execute(
        "SELECT r.image_id, t.layer, r.rep_error, r.shard, r.dataset, i.source FROM invert_results r "
        "JOIN tasks t ON t.task_key = r.task_key AND t.state = 'done' "
        "JOIN invert_settings s ON s.setting_id = t.setting_id AND s.name = ? "
        "LEFT JOIN images i ON i.technique = 'invert' AND i.image_id = r.image_id "
        "ORDER BY r.image_id", (setting,)).fetchall()
    images = sorted({r[0] for r in rows})
    if args.images:
        keep = set(parse_units(args.images))
        images = [i for i in images if i in keep]
    if not images:
        raise AnalysisError(f"no finished inversions under setting {setting!r} for these images")
    cell = {(r[0], r[1]): r for r in rows}
    cols = 1 + len(layers)
    tile = args.tile
    fig = plt.figure(figsize=(cols * tile / 100, len(images) * (tile + 14) / 100), dpi=100)
    h = tile / (tile + 14) / len(images)
    with Shards(args.results_dir) as shards:
        for i, image in enumerate(images):
            y = 1 - (i + 1) / len(images) + 14 / (tile + 14) / len(images)  # above its label strip
            target_done = False
            for j, layer in enumerate(layers):
                r = cell.get((image, layer))
                if r is None:
                    continue
                g = shards.group(r[3], r[4])
                if not target_done:  # the input, stored with every reconstruction
                    ax = fig.add_axes([0, y, 1 / cols, h])
                    ax.imshow(g[f"target_{image}"][()], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
                    ax.axis("off")
                    fig.text(0.5 / cols, y, f"input #{image}", fontsize=7, ha="center", va="top")
                    target_done = True
                ax = fig.add_axes([(j + 1) / cols, y, 1 / cols, h])
                img = shards.read(r[3], r[4])
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
                ax.axis("off")
                fig.text((j + 1.5) / cols, y, f"{layer} {r[2]:.3f}", fontsize=7, ha="center", va="top")
    fig.savefig(args.output, dpi=100)
    plt.close(fig)
    print(f"wrote {args.output}: {len(images)} images x {len(layers)} layers under {setting} "
          "(normalized reconstruction error under each)")
    return 0


def add_parser(sub):
    p = sub.add_parser("invert", help="inversions: images x layers with the reconstruction error",
                       description=__doc__)
    p.add_argument("results_dir")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--setting", help="inversion setting (default: the first)")
    p.add_argument("--layers", help="comma-separated layers (default: all with results)")
    p.add_argument("--images", help="image ids as ranges, like 0-3 (default all)")
    p.add_argument("--tile", type=int, default=96, help="pixels per tile (default 96)")
    p.set_defaults(run=run)
