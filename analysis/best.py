"""`best`: per layer, the activation-maximization settings ranked by a metric."""
import csv
import sys

from analysis.index import AnalysisError, check_layer, open_index

# metric -> (column of actmax_by_layer_setting, higher is better)
METRICS = {
    "activation": ("mean_activation", True),
    "hf_energy": ("mean_hf_energy", False),
    "total_variation": ("mean_tv", False),
    "saturation": ("mean_saturation", False),
    "robustness": ("mean_robustness", True),
    "argmax_rate": ("mean_argmax_rate", True),
}


def ranking(db, layer, metric):
    """[(setting, units, value)] for one layer, best first."""
    if metric not in METRICS:
        raise AnalysisError(f"unknown metric {metric!r} (have {', '.join(METRICS)})")
    column, higher = METRICS[metric]
    column = "argmax_rate" if column == "mean_argmax_rate" else column
    order = "DESC" if higher else "ASC"
    return db.execute(f"SELECT setting, units, {column} FROM actmax_by_layer_setting WHERE layer = ? "
                      f"ORDER BY {column} {order}, setting_id", (layer,)).fetchall()


def run(args):
    db = open_index(args.results_dir)
    rows = []
    for layer in check_layer(db, args.layer):
        for rank, (setting, units, value) in enumerate(ranking(db, layer, args.metric), 1):
            rows.append((layer, rank, setting, units, value))
    print(f"{'layer':<10} {'rank':>4}  {'setting':<28} {'units':>6}  {args.metric}")
    for layer, rank, setting, units, value in rows:
        print(f"{layer:<10} {rank:>4}  {setting:<28} {units:>6}  {value:.4f}")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["layer", "rank", "setting", "units", args.metric])
            w.writerows(rows)
    return 0


def add_parser(sub):
    p = sub.add_parser("best", help="settings ranked by a metric, per layer")
    p.add_argument("results_dir")
    p.add_argument("--metric", default="activation", help=f"one of {', '.join(METRICS)} (default activation)")
    p.add_argument("--layer", help="one layer (default: every layer)")
    p.add_argument("--csv", help="also write the table as CSV")
    p.set_defaults(run=run)
