"""`atlas`: a static HTML site of a sweep's activation maximization, opened from disk (no server,
no scripts): index.html lists the layers; one page per layer shows every unit's image under the
layer's best setting (by --metric), with its strongest natural exemplars under it; one page per
unit shows its natural exemplars (top-k, and bottom-k when kept) and all its settings with their
metrics and objective traces, each setting's image beside the unit's top exemplars. Images are
PNG files under img/; exemplar crops as `python3 -m analysis exemplars` draws them."""
import html
import os

import numpy as np

from analysis import exemplars as ex
from analysis.best import metric_of, ranking
from analysis.index import (AnalysisError, Shards, check_layer, class_names, default_metric, metrics, open_index, safe_name,  # noqa: F401
                            sweep_info, write_png)


STYLE = """
body { font-family: sans-serif; margin: 1.5em; background: #fafafa; color: #222; }
a { color: #0645ad; text-decoration: none; }
nav { margin-bottom: 1em; }
.units { display: flex; flex-wrap: wrap; gap: 6px; }
figure { margin: 0; width: 112px; text-align: center; font-size: 11px; }
figure img, td img { width: 104px; height: 104px; image-rendering: pixelated; border: 1px solid #ccc; background: #888; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ddd; padding: 4px 8px; text-align: right; vertical-align: middle; }
th { background: #eee; }
td.name, th.name { text-align: left; }
svg { background: white; border: 1px solid #ddd; }
.ex { display: flex; flex-wrap: wrap; gap: 4px; align-items: flex-start; }
.ex figure { width: 60px; font-size: 10px; }
.ex figure img { width: 56px; height: 56px; }
.ex.small { flex-wrap: nowrap; gap: 2px; justify-content: center; margin-top: 2px; }
.ex.small img { width: 48px; height: 48px; border: 1px solid #ccc; image-rendering: pixelated; }
figure .ex.small img { width: 34px; height: 34px; }
"""


def esc(x):
    return html.escape(str(x), quote=True)


def page(title, body, up=None):
    nav = f'<nav><a href="index.html">atlas</a>{" / " + up if up else ""}</nav>' if up is not None else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><link rel=\"stylesheet\" href=\"style.css\"></head>\n"
            f"<body>{nav}<h1>{esc(title)}</h1>\n{body}\n</body></html>\n")


def trace_svg(values, width=240, height=80):
    """The objective by iteration as an inline SVG polyline, with its range printed."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return ""
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo if hi > lo else 1.0
    pts = " ".join(f"{i * (width - 1) / (v.size - 1):.1f},{height - 1 - (x - lo) / span * (height - 2):.1f}"
                   for i, x in enumerate(v))
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="objective by iteration"><polyline fill="none" stroke="#c33" stroke-width="1.5" '
            f'points="{pts}"/></svg><br><small>{lo:.3g} .. {hi:.3g} over {v.size} iterations</small>')


def unit_name(layer, unit, names):
    named = layer == "fc8" and names.get(unit, str(unit)) != str(unit)
    return f"unit {unit}" + (f" ({names[unit]})" if named else "")


def run(args):
    db = open_index(args.results_dir)
    args.metric = args.metric or default_metric(db)
    chosen = metric_of(db, args.metric, "actmax")
    # Every activation-maximization metric the index declares, one column each on unit pages.
    shown = [m for m in metrics(db).values() if m.technique == "actmax"]
    chosen_at = [m.name for m in shown].index(chosen.name)
    layers = check_layer(db, None)
    if args.layer:
        want = args.layer.split(",")
        for w in want:
            check_layer(db, w)
        layers = [x for x in layers if x in want]
    names = class_names(db)
    info = sweep_info(db)
    out = args.output
    os.makedirs(os.path.join(out, "img"), exist_ok=True)
    with open(os.path.join(out, "style.css"), "w") as f:
        f.write(STYLE)
    higher = chosen.higher
    index_rows, n_images, n_pages = [], 0, 0
    ex_layers = ex.exemplar_layers(db) if ex.has_exemplars(db) else []
    n_crops = 0
    with Shards(args.results_dir) as shards:
        for layer in layers:
            ranked = ranking(db, layer, args.metric)
            best_setting = ranked[0][0]
            lname = safe_name(layer)
            os.makedirs(os.path.join(out, "img", lname), exist_ok=True)
            # The layer's natural exemplars: crop files per unit, top and bottom.
            crops = {}
            for unit, kinds in (ex.lists(db, layer) if layer in ex_layers else {}).items():
                for kind, rows_ in kinds.items():
                    for row in rows_:
                        file = f"img/{lname}/ex-{unit}-{kind}{row[0]}.png"
                        c = ex.crop(shards, row)
                        write_png(os.path.join(out, file), ex.enlarge(c, max(c.shape[:2])))  # square, as shown
                        crops.setdefault(unit, {}).setdefault(kind, []).append((file, row))
                        n_crops += 1

            def strip(unit, kind, count=None, captions=True):
                items = crops.get(unit, {}).get(kind, [])[:count]
                def img(f, row):
                    return f'<img src="{f}" alt="{kind} exemplar {row[0]}: {esc(row[2])}" title="{esc(row[2])}">'
                if not captions:
                    return '<div class="ex small">' + "".join(img(f, row) for f, row in items) + "</div>"
                return '<div class="ex">' + "".join(
                    f"<figure>{img(f, row)}<figcaption>{row[3]:.3g}</figcaption></figure>" for f, row in items) + "</div>"
            rows = db.execute(
                "SELECT r.unit, s.setting_id, s.name, r.shard, r.dataset, r.final_activation, " +
                ", ".join(f"r.{m.column}" for m in shown) + " FROM actmax_results r "
                "JOIN tasks t ON t.task_key = r.task_key AND t.state = 'done' "
                "JOIN actmax_settings s ON s.setting_id = t.setting_id WHERE t.layer = ? "
                "ORDER BY r.unit, s.setting_id, t.seed", (layer,)).fetchall()
            by_unit = {}
            for r in rows:
                by_unit.setdefault(r[0], []).append(r)
            units = sorted(by_unit)
            cards = []
            for k, unit in enumerate(units):
                table = ["<table><tr><th class=name>setting</th><th>image</th>" +
                         ("<th>top exemplars</th>" if unit in crops else "") +
                         "".join(f"<th>{esc(m.name.replace('_', ' '))}</th>" for m in shown) +
                         "<th>objective by iteration</th></tr>"]
                best_img = None
                for (u, sid, sname, shard, dataset, act, *values) in by_unit[unit]:
                    file = f"img/{lname}/{unit}-s{sid}.png"
                    write_png(os.path.join(out, file), shards.read(shard, dataset))
                    n_images += 1
                    g = shards.group(shard, dataset)
                    pos = list(g["units"][()]).index(unit)
                    trace = trace_svg(g["objective_trace"][:, pos])
                    cells = "".join("<td>n/a</td>" if v is None else f"<td>{v:.4g}</td>" for v in values)
                    beside = f"<td>{strip(unit, 'top', 3, False)}</td>" if unit in crops else ""
                    table.append(f"<tr><td class=name>{esc(sname)}</td><td><img src=\"{file}\" alt=\"{esc(sname)}\">"
                                 f"</td>{beside}{cells}<td>{trace}</td></tr>")
                    if sname == best_setting and best_img is None:
                        best_img = (file, values[chosen_at])
                table.append("</table>")
                uname = unit_name(layer, unit, names)
                prev_next = " ".join(
                    f'<a href="unit-{lname}-{units[j]}.html">{label}</a>'
                    for j, label in ((k - 1, "previous"), (k + 1, "next")) if 0 <= j < len(units))
                natural = ""
                if unit in crops:
                    natural = ("<h2>natural exemplars</h2><p>The dataset images that drive this unit hardest, "
                               "strongest first: the receptive field at the unit's strongest position, with the "
                               "activation under each.</p>" + strip(unit, "top"))
                    if crops[unit].get("bottom"):
                        natural += "<p>And least (bottom exemplars):</p>" + strip(unit, "bottom")
                    natural += "<h2>visualizations</h2>"
                body = (f"<p>{esc(info['name'])}, layer {esc(layer)}, {esc(uname)}. {prev_next}</p>" + natural +
                        "".join(table))
                with open(os.path.join(out, f"unit-{lname}-{unit}.html"), "w") as f:
                    f.write(page(f"{layer} {uname}", body,
                                 up=f'<a href="layer-{lname}.html">{esc(layer)}</a>'))
                n_pages += 1
                if best_img:
                    cards.append(f'<a href="unit-{lname}-{unit}.html"><figure><img src="{best_img[0]}" '
                                 f'alt="{esc(uname)}"><figcaption>{esc(uname)}<br>{esc(args.metric)} '
                                 f'{"n/a" if best_img[1] is None else format(best_img[1], ".3g")}</figcaption>'
                                 + (strip(unit, "top", 3, False) if unit in crops else "") + "</figure></a>")
            table = "".join(f"<tr><td class=name>{esc(s)}</td><td>{c}</td><td>{'n/a' if v is None else f'{v:.4g}'}"
                            f"</td><td>{'yes' if fr else ''}</td></tr>" for s, c, v, fr in ranked)
            body = (f"<p>{len(units)} units, each under the layer's best setting by {esc(args.metric)} "
                    f"({'higher' if higher else 'lower'} is better): <b>{esc(best_setting)}</b>. "
                    + ("Under each, its three strongest natural exemplars. " if crops else "") +
                    "Click a unit for all its settings.</p>"
                    f"<table><tr><th class=name>setting</th><th>units</th><th>mean {esc(args.metric)}</th><th>pareto</th></tr>"
                    f"{table}</table><h2>units</h2><div class=units>{''.join(cards)}</div>")
            with open(os.path.join(out, f"layer-{lname}.html"), "w") as f:
                f.write(page(f"{layer}: {len(units)} units", body, up=""))
            n_pages += 1
            index_rows.append(f'<tr><td class=name><a href="layer-{lname}.html">{esc(layer)}</a></td>'
                              f"<td>{len(units)}</td><td>{len(ranked)}</td><td class=name>{esc(best_setting)}</td></tr>")
    body = (f"<p>Sweep <b>{esc(info['name'])}</b>, model {esc(info['model'])}. Images maximize one unit each; "
            f"layer pages show the best setting by {esc(args.metric)}.</p>"
            "<table><tr><th class=name>layer</th><th>units</th><th>settings</th><th class=name>best setting</th></tr>"
            f"{''.join(index_rows)}</table>")
    with open(os.path.join(out, "index.html"), "w") as f:
        f.write(page(f"vizsweep atlas: {info['name']}", body))
    n_pages += 1
    print(f"wrote {out}/index.html: {len(layers)} layers, {n_pages} pages, {n_images} images, {n_crops} exemplar crops")
    return 0


def add_parser(sub):
    p = sub.add_parser("atlas", help="static HTML atlas: one page per layer and per unit", description=__doc__)
    p.add_argument("results_dir")
    p.add_argument("-o", "--output", required=True, help="directory to write the site into")
    p.add_argument("--metric",
                   help="picks each layer's best setting (default score; activation for an index older "
                        "than schema 1.4): " +
                        ", ".join(k for k, m in metrics().items() if m.technique == "actmax"))
    p.add_argument("--layer", help="comma-separated layers (default all)")
    p.set_defaults(run=run)
