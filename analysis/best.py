"""`best`: per layer, the settings of a technique ranked by a metric, with the Pareto front of
activation against naturalness (high-frequency energy) for activation maximization."""
import csv

from analysis.index import AnalysisError, check_layer, open_index

# metric -> (technique, SQL aggregate over the rows of one setting, higher is better, what it is)
METRICS = {
    "activation": ("actmax", "AVG(r.final_activation)", True, "mean final activation of the unit"),
    "hf_energy": ("actmax", "AVG(r.hf_energy)", False, "high-frequency energy share (lower: more natural)"),
    "total_variation": ("actmax", "AVG(r.total_variation)", False, "total variation per pixel"),
    "saturation": ("actmax", "AVG(r.saturation)", False, "share of pixels at 0 or 255"),
    "robustness": ("actmax", "AVG(r.robustness)", True, "activation kept under jitter, relative"),
    "argmax_rate": ("actmax", "AVG(r.is_argmax)", True, "share of units that are the layer's argmax"),
    "inversion_error": ("invert", "AVG(r.rep_error)", False, "normalized representation error"),
    "fgsm_success": ("fgsm", "CAST(SUM(r.success AND r.clean_pred = r.true_label) AS REAL) / "
                             "NULLIF(SUM(r.clean_pred = r.true_label), 0)", True,
                     "share of correctly classified images fooled"),
}

# Per setting of one layer: (setting_id, name, count, metric, mean activation, mean hf energy).
# The base tables, not the views: the layer filter then uses the tasks_by_layer index (SQLite
# does not push it into a grouped view), which keeps one layer of a million rows fast.
# FGSM attacks the whole model: its one "layer" is '*'.
RESULTS = {"actmax": "actmax_results", "invert": "invert_results", "fgsm": "fgsm_results"}
SETTINGS = {"actmax": "actmax_settings", "invert": "invert_settings", "fgsm": "fgsm_settings"}


def query(technique, aggregate):
    extra = "AVG(r.final_activation), AVG(r.hf_energy)" if technique == "actmax" else "NULL, NULL"
    return (f"SELECT s.setting_id, s.name, COUNT(*), {aggregate}, {extra} FROM tasks t "
            f"JOIN {RESULTS[technique]} r ON r.task_key = t.task_key "
            f"JOIN {SETTINGS[technique]} s ON s.setting_id = t.setting_id "
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


def ranking(db, layer, metric):
    """[(setting, count, value, on_pareto_front)] for one layer, best first."""
    technique, aggregate, higher, _ = METRICS[metric]
    rows = db.execute(query(technique, aggregate), (technique, layer)).fetchall()
    front = pareto_front([(r[0], r[4], r[5]) for r in rows]) if technique == "actmax" else set()
    key = (lambda r: (r[3] is None, -(r[3] or 0) if higher else (r[3] or 0), r[0]))
    return [(r[1], r[2], r[3], r[0] in front) for r in sorted(rows, key=key)]


def run(args):
    if args.metric not in METRICS:
        raise AnalysisError(f"unknown metric {args.metric!r} (have {', '.join(METRICS)})")
    technique = METRICS[args.metric][0]
    db = open_index(args.results_dir)
    rows = []
    for layer in check_layer(db, args.layer, technique):
        for rank, (setting, count, value, front) in enumerate(ranking(db, layer, args.metric), 1):
            if args.pareto and not front:
                continue
            rows.append((layer, rank, setting, count, value, "yes" if front else ""))
    count_name = "units" if technique == "actmax" else "images"
    print(f"{'layer':<10} {'rank':>4}  {'setting':<28} {count_name:>6}  {args.metric:>15}  pareto")
    for layer, rank, setting, count, value, front in rows:
        shown = "n/a" if value is None else f"{value:.4f}"
        print(f"{layer:<10} {rank:>4}  {setting:<28} {count:>6}  {shown:>15}  {front}")
    if technique == "actmax":
        print("pareto: not beaten on both mean activation (higher) and high-frequency energy (lower)")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["layer", "rank", "setting", count_name, args.metric, "pareto"])
            w.writerows(rows)
    return 0


def add_parser(sub):
    lines = "\n".join(f"  {k:<16} {v[3]} ({'higher' if v[2] else 'lower'} is better)" for k, v in METRICS.items())
    p = sub.add_parser("best", help="settings ranked by a metric, per layer",
                       description="Ranks the settings of each layer by a metric.\nmetrics:\n" + lines,
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("results_dir")
    p.add_argument("--metric", default="activation", help="a metric listed above (default activation)")
    p.add_argument("--layer", help="one layer (default: every layer)")
    p.add_argument("--pareto", action="store_true", help="only the settings on the Pareto front")
    p.add_argument("--csv", help="also write the table as CSV")
    p.set_defaults(run=run)
