"""`featuremaps`: every activation map of a layer for one input image, tiled in a near-square grid
with one-pixel gaps (the layout of Yosinski et al.'s toolbox). Maps share one grey scale by
default, so strong and silent channels stand out; --per-map scales each map on its own. Fully
connected layers show their N activations as one square map."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from analysis.index import AnalysisError, Shards, open_index  # noqa: E402


def tile_maps(maps, per_map=False):
    """[C, H, W] (or [N]) -> one 2-D array in [0, 1]: ceil(sqrt(C)) columns, 1-px gaps of 1.0."""
    a = np.asarray(maps, dtype=np.float64)
    if a.ndim == 1:
        side = math.ceil(math.sqrt(a.size))
        padded = np.full(side * side, np.nan)
        padded[:a.size] = a
        a = padded.reshape(1, side, side)
    c, h, w = a.shape
    if per_map:
        lo = np.nanmin(a.reshape(c, -1), axis=1)[:, None, None]
        hi = np.nanmax(a.reshape(c, -1), axis=1)[:, None, None]
    else:
        lo, hi = np.nanmin(a), np.nanmax(a)
    a = (a - lo) / np.where(hi - lo > 0, hi - lo, 1.0)
    cols = math.ceil(math.sqrt(c))
    rows = math.ceil(c / cols)
    out = np.ones((rows * (h + 1) - 1, cols * (w + 1) - 1))
    for k in range(c):
        r, q = divmod(k, cols)
        out[r * (h + 1):r * (h + 1) + h, q * (w + 1):q * (w + 1) + w] = np.nan_to_num(a[k], nan=1.0)
    return out


def run(args):
    db = open_index(args.results_dir)
    rows = db.execute("SELECT r.image_id, r.layer, r.shard, r.dataset FROM featuremap_results r "
                      "JOIN tasks t ON t.task_key = r.task_key AND t.state = 'done' ORDER BY r.image_id, r.rowid"
                      ).fetchall()
    if not rows:
        raise AnalysisError("the index holds no feature-map results")
    images = list(dict.fromkeys(r[0] for r in rows))
    image = images[0] if args.image is None else args.image
    if image not in images:
        raise AnalysisError(f"--image: no feature maps of image {image} (have {', '.join(map(str, images))})")
    layers = [r[1] for r in rows if r[0] == image]
    layer = args.layer or layers[0]
    if layer not in layers:
        raise AnalysisError(f"no feature maps for layer {layer!r} (have {', '.join(layers)})")
    shard, dataset = next((r[2], r[3]) for r in rows if r[0] == image and r[1] == layer)
    with Shards(args.results_dir) as shards:
        maps = shards.read(shard, dataset)
        source = shards.group(shard, dataset)["input"][()]
    if not np.all(np.isfinite(maps)):
        raise AnalysisError(f"{shard}:{dataset}: holds NaN or Inf")
    mosaic = tile_maps(maps, args.per_map)
    scale = max(1, args.scale)
    fig = plt.figure(figsize=((mosaic.shape[1] * scale + 160) / 100, max(mosaic.shape[0] * scale, 160) / 100 + 0.3),
                     dpi=100)
    ax = fig.add_axes([0, 0, 160 / (mosaic.shape[1] * scale + 160), 0.9])
    ax.imshow(source, cmap="gray" if source.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(f"input #{image}", fontsize=8)
    ax.axis("off")
    ax = fig.add_axes([160 / (mosaic.shape[1] * scale + 160), 0, 1 - 160 / (mosaic.shape[1] * scale + 160), 0.93])
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    shape = "x".join(map(str, maps.shape))
    ax.set_title(f"{layer} [{shape}], range {maps.min():.3g} .. {maps.max():.3g}"
                 f"{', each map scaled alone' if args.per_map else ''}", fontsize=8)
    fig.savefig(args.output, dpi=100)
    plt.close(fig)
    n = maps.shape[0] if maps.ndim == 3 else 1
    print(f"wrote {args.output}: {layer} of image {image}, {n} map{'s' if n > 1 else ''} [{shape}]")
    return 0


def add_parser(sub):
    p = sub.add_parser("featuremaps", help="activation maps of a layer for an input image, tiled",
                       description=__doc__)
    p.add_argument("results_dir")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--layer", help="layer (default: the first with feature maps)")
    p.add_argument("--image", type=int, help="image id (default: the first)")
    p.add_argument("--per-map", action="store_true", help="scale each map to its own range")
    p.add_argument("--scale", type=int, default=4, help="screen pixels per map pixel (default 4)")
    p.set_defaults(run=run)
