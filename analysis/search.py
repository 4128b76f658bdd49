"""`search`: an actmax.search (asynchronous successive halving) as its rungs. A table per layer
(each setting's metric at every rung it ran, whether it went on, the choice) with the rank
correlation of each rung's ranking with the highest rung's, and a figure: the metric against
iterations, one line per setting, the promoted trials drawn in colour and the rest in grey, the
chosen setting starred."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.index import (AnalysisError, check_layer, metrics, open_index,  # noqa: E402
                            save_figure_and_table)


def trials(db, layer=None):
    """{layer: {base_setting: {rung: (iterations, value, promoted, setting name)}}} in the
    order of completion, and the metric's name; empty when the index holds no search."""
    have = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "search_trials" not in have:
        return {}, None
    out, metric = {}, None
    rows = db.execute(
        "SELECT st.layer, st.base_setting, st.rung, st.iterations, st.value, st.promoted_at IS NOT NULL, s.name, st.metric "
        "FROM search_trials st JOIN actmax_settings s ON s.setting_id = st.setting_id "
        "WHERE ? IS NULL OR st.layer = ? ORDER BY st.completed", (layer, layer)).fetchall()
    for lay, base, rung, iters, value, promoted, name, m in rows:
        out.setdefault(lay, {}).setdefault(base, {})[rung] = (iters, value, bool(promoted), name.rsplit("@", 1)[0])
        metric = m
    return out, metric


def ranking(layer_trials, rung, higher):
    """Base settings of the trials completed at `rung`, best first (no value last, then the
    lower setting), as the coordinator ranks them."""
    done = [(b, r[rung][1]) for b, r in layer_trials.items() if rung in r]
    return [b for b, v in sorted(done, key=lambda x: (x[1] is None, -(x[1] or 0) if higher else (x[1] or 0), x[0]))]


def spearman(a, b):
    """Spearman's rho of two rankings over the settings in both (None under 3)."""
    common = [s for s in a if s in b]
    n = len(common)
    if n < 3:
        return None
    ra = {s: i for i, s in enumerate([s for s in a if s in common])}
    rb = {s: i for i, s in enumerate([s for s in b if s in common])}
    return 1 - 6 * sum((ra[s] - rb[s]) ** 2 for s in common) / (n * (n * n - 1))


def chosen(layer_trials, higher):
    """(base setting, rung) of the best trial at the highest rung reached: the search's choice."""
    top = max(r for t in layer_trials.values() for r in t)
    return ranking(layer_trials, top, higher)[0], top


def run(args):
    db = open_index(args.results_dir)
    if args.layer:
        check_layer(db, args.layer, "actmax")
    found, metric = trials(db, args.layer)
    if not found:
        raise AnalysisError(f"{args.results_dir}: no search trials here (a sweep with actmax.search writes them)")
    higher = metrics(db)[metric].higher
    rows = []
    layers = list(found)
    fig, axes = plt.subplots(1, len(layers), figsize=(5.5 * len(layers), 4.2), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        lt = found[layer]
        rungs = sorted({r for t in lt.values() for r in t})
        best, top = chosen(lt, higher)
        print(f"\n{layer}: {len(lt)} settings, rungs of {', '.join(str(_iters(lt, r)) for r in rungs)} iterations, "
              f"metric {metric}; chosen {lt[best][top][3]} ({lt[best][top][1]:.4f} at {lt[best][top][0]} iterations)")
        width = max(len(t[0][3]) for t in lt.values())
        print(f"  {'setting':<{width}} " + " ".join(f"{'it ' + str(_iters(lt, r)):>12}" for r in rungs))
        for base in sorted(lt, key=lambda b: ranking(lt, 0, higher).index(b)):
            t = lt[base]
            cells = []
            for r in rungs:
                if r not in t:
                    cells.append(f"{'':>12}")
                    continue
                v = "n/a" if t[r][1] is None else f"{t[r][1]:.4f}"
                cells.append(f"{v + (' ^' if t[r][2] else '  '):>12}")
                rows.append((layer, t[r][3], r + 1, t[r][0], t[r][1], "yes" if t[r][2] else "", "yes" if (base, r) == (best, top) else ""))
            print(f"  {t[0][3]:<{width}} " + " ".join(cells) + ("  <- chosen" if base == best else ""))
        rho = [(r, spearman(ranking(lt, r, higher), ranking(lt, top, higher))) for r in rungs if r < top]
        if rho:
            print(f"  rank correlation with rung {top + 1}'s ranking: " +
                  ", ".join(f"rung {r + 1}: {'-' if v is None else f'{v:+.2f}'}" for r, v in rho) +
                  " (over the settings both ranked; '-': fewer than 3)")
        print("  ^: promoted to the next rung")
        for base, t in lt.items():
            xs = [t[r][0] for r in sorted(t)]
            ys = [t[r][1] if t[r][1] is not None else float("nan") for r in sorted(t)]
            went_on = any(v[2] for v in t.values())
            ax.plot(xs, ys, "-o", color=None if went_on else "0.75", lw=1.8 if went_on else 0.8, ms=3,
                    label=t[0][3] if went_on else None, zorder=2 if went_on else 1)
        ax.plot([lt[best][top][0]], [lt[best][top][1]], "*", color="black", ms=14, zorder=3)
        ax.set_xscale("log")
        ax.set_xticks([_iters(lt, r) for r in rungs], [str(_iters(lt, r)) for r in rungs])
        ax.minorticks_off()
        ax.set_xlabel("iterations (rung budget)")
        ax.set_ylabel(metric)
        ax.set_title(f"{layer}: {len(lt)} settings, chosen {lt[best][top][3]}", fontsize=9)
        ax.legend(fontsize=6, loc="best")
    save_figure_and_table(fig, args.output, args.csv,
                          ["layer", "setting", "rung", "iterations", metric, "promoted", "chosen"], rows)
    return 0


def _iters(lt, rung):
    return next(t[rung][0] for t in lt.values() if rung in t)


def add_parser(sub):
    p = sub.add_parser("search", help="an actmax search's rungs: table and figure",
                       description="The trials of an actmax.search: per layer, each setting's metric at every rung, "
                                   "which went on, the choice, and how well each rung's ranking agrees with the last.")
    p.add_argument("results_dir")
    p.add_argument("-o", "--output", default="search.png", help="the figure (default search.png)")
    p.add_argument("--layer", help="one layer (default: every layer searched)")
    p.add_argument("--csv", help="also write the table as CSV")
    p.set_defaults(run=run)
