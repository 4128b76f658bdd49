"""`best`: per layer, the settings of a technique ranked by a metric, with the Pareto front of
activation against naturalness (high-frequency energy) for activation maximization."""
import csv

from analysis.index import NAME, AnalysisError, check_layer, default_metric, metrics, open_index

# Per setting of one layer: (setting_id, name, count, metric, mean activation, mean hf energy).
# The base tables, not the views: the layer filter then uses the tasks_by_layer index (SQLite
# does not push it into a grouped view), which keeps one layer of a million rows fast.
# FGSM attacks the whole model: its one "layer" is '*'.
# Any technique with settings: its results are the metric's table, its settings <technique>_settings
# (the names come from the index's metrics declarations, checked by analysis.index.metrics).


def settings_table(db, technique):
    table = f"{technique}_settings"
    if not NAME.match(table) or not db.execute(f"PRAGMA table_info({table})").fetchall():
        raise AnalysisError(f"{technique} has no settings table in this index: its metrics cannot be ranked by setting")
    return table


def query(db, metric):
    extra = "AVG(r.final_activation), AVG(r.hf_energy)" if metric.technique == "actmax" else "NULL, NULL"
    return (f"SELECT s.setting_id, s.name, COUNT(*), {metric.sql()}, {extra} FROM tasks t "
            f"JOIN {metric.result_table} r ON r.task_key = t.task_key "
            f"JOIN {settings_table(db, metric.technique)} s ON s.setting_id = t.setting_id "
            "WHERE t.technique = ? AND t.layer = ? AND t.state = 'done' GROUP BY s.setting_id")


def pareto_front(rows):
    """setting_ids of rows (setting_id, activation, hf_energy) that no other row beats on both
    (higher activation and lower high-frequency energy, one of them strictly)."""
    front = set()
    for sid, act, hf in rows:
        dominated = any(a >= act and h <= hf and (a > act or h < hf) for _, a, h in rows)
        if not dominated:
            front.add(sid)
    return front


def metric_of(db, name, technique=None):
    """The index's declaration of metric `name` (of `technique` when given); a clear error
    listing the metrics it has otherwise."""
    have = {k: m for k, m in metrics(db).items() if technique in (None, m.technique)}
    if name not in have:
        raise AnalysisError(f"unknown metric {name!r}" + (f" for {technique}" if technique else "") +
                            f" (have {', '.join(have)})")
    return have[name]


def ranking(db, layer, metric):
    """[(setting, count, value, on_pareto_front)] for one layer, best first."""
    m = metric_of(db, metric)
    technique, higher = m.technique, m.higher
    rows = db.execute(query(db, m), (technique, layer)).fetchall()
    front = pareto_front([(r[0], r[4], r[5]) for r in rows]) if technique == "actmax" else set()
    key = (lambda r: (r[3] is None, -(r[3] or 0) if higher else (r[3] or 0), r[0]))
    return [(r[1], r[2], r[3], r[0] in front) for r in sorted(rows, key=key)]


def search_ranking(db, layer, metric):
    """For a layer an actmax.search ran with `metric`: [(setting, units, value, rung, iterations)]
    in the search's order (the highest rung reached first, then the metric), so the first is
    its choice; None otherwise."""
    from analysis import search
    found, searched = search.trials(db, layer)
    if layer not in found or searched != metric:
        return None
    lt, higher = found[layer], metrics(db)[metric].higher
    units = db.execute("SELECT units FROM search_trials WHERE layer = ? LIMIT 1", (layer,)).fetchone()[0]
    out = []
    for rung in sorted({r for t in lt.values() for r in t}, reverse=True):
        for base in search.ranking(lt, rung, higher):
            if all(o[0] != lt[base][rung][3] for o in out):
                out.append((lt[base][rung][3], units, lt[base][rung][1], rung, lt[base][rung][0]))
    return out


def run(args):
    db = open_index(args.results_dir)
    args.metric = args.metric or default_metric(db)
    m = metric_of(db, args.metric)
    technique = m.technique
    rows = []
    for layer in check_layer(db, args.layer, technique):
        searched = search_ranking(db, layer, args.metric) if technique == "actmax" else None
        if searched is not None:
            # A search's layer: each setting once, at the highest rung it reached.
            for rank, (setting, units, value, rung, iters) in enumerate(searched, 1):
                rows.append((layer, rank, f"{setting} (rung {rung + 1}, {iters} it)", units, value, ""))
            continue
        for rank, (setting, count, value, front) in enumerate(ranking(db, layer, args.metric), 1):
            if args.pareto and not front:
                continue
            rows.append((layer, rank, setting, count, value, "yes" if front else ""))
    columns = {c[1] for c in db.execute(f"PRAGMA table_info({m.result_table})")}
    count_name = "units" if "unit" in columns else "images"
    width = max([28] + [len(r[2]) for r in rows])
    print(f"{'layer':<10} {'rank':>4}  {'setting':<{width}} {count_name:>6}  {args.metric:>15}  pareto")
    for layer, rank, setting, count, value, front in rows:
        shown = "n/a" if value is None else f"{value:.4f}"
        print(f"{layer:<10} {rank:>4}  {setting:<{width}} {count:>6}  {shown:>15}  {front}")
    if technique == "actmax":
        print("pareto: not beaten on both mean activation (higher) and high-frequency energy (lower)")
        if any("(rung " in r[2] for r in rows):
            print("searched layers (actmax.search): each setting at the highest rung it reached, those reached higher first; "
                  "the first is the search's choice (python3 -m analysis search draws the rungs)")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["layer", "rank", "setting", count_name, args.metric, "pareto"])
            w.writerows(rows)
    return 0


def add_parser(sub):
    lines = "\n".join(f"  {k:<16} {m.description} ({'higher' if m.higher else 'lower'} is better)"
                      for k, m in metrics().items())
    p = sub.add_parser("best", help="settings ranked by a metric, per layer",
                       description="Ranks the settings of each layer by a metric.\nmetrics (those an index "
                                   "declares; these are results_schema.sql's):\n" + lines,
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("results_dir")
    p.add_argument("--metric", help="a metric listed above (default score, the interpretability score; "
                                    "activation for an index older than schema 1.4)")
    p.add_argument("--layer", help="one layer (default: every layer)")
    p.add_argument("--pareto", action="store_true", help="only the settings on the Pareto front")
    p.add_argument("--csv", help="also write the table as CSV")
    p.set_defaults(run=run)
