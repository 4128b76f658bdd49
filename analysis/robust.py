"""`robust`: robust accuracy against eps. Per norm, a table and a figure panel: one curve per
attack setting (attack, steps, restarts, targeted) and one for the ensemble, AutoAttack's rule
(an image counts as robust at a budget only when no attack at that budget changed its label;
the index's robust_accuracy view), and each attack's marginal gain: the images that attack
alone broke at that budget (what removing it from the ensemble would give back)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.index import AnalysisError, open_index, save_figure_and_table  # noqa: E402


def attack_rows(db):
    """[(norm, eps, label, image_id, clean_ok, survived)] over the done fgsm tasks."""
    cols = {r[1] for r in db.execute("PRAGMA table_info(fgsm_settings)")}
    if "attack" not in cols:
        raise AnalysisError("this index predates schema 1.8 (no attack column): run `vizsweep run` on the results "
                            "directory once to migrate it, or attack with a sweep of this version")
    return db.execute(
        "SELECT s.norm, s.eps, s.attack || ' ' || s.steps || ' steps' || "
        "CASE WHEN s.restarts > 1 THEN ' x' || s.restarts ELSE '' END || CASE WHEN s.targeted THEN ' targeted' ELSE '' END, "
        "r.image_id, r.clean_pred = r.true_label, r.clean_pred = r.true_label AND r.final_pred = r.true_label "
        "FROM fgsm_results r JOIN tasks t ON t.task_key = r.task_key AND t.state = 'done' "
        "JOIN fgsm_settings s ON s.setting_id = t.setting_id").fetchall()


def summarize(rows):
    """{norm: {eps: {label: (accuracy, images, marginal)}}} and {norm: {eps: (ensemble accuracy, images)}}."""
    per, images = {}, {}
    for norm, eps, label, image_id, clean_ok, survived in rows:
        per.setdefault(norm, {}).setdefault(eps, {}).setdefault(label, {})[image_id] = (clean_ok, survived)
        images.setdefault((norm, eps), {})
        ok = images[(norm, eps)].get(image_id, True)
        images[(norm, eps)][image_id] = ok and bool(survived)
    table, ensemble = {}, {}
    for norm, by_eps in per.items():
        for eps, by_label in by_eps.items():
            flags = images[(norm, eps)]
            ensemble.setdefault(norm, {})[eps] = (sum(flags.values()) / len(flags), len(flags))
            for label, imgs in by_label.items():
                acc = sum(s for _, s in imgs.values()) / len(imgs)
                # Broken by this attack and by no other at this budget (clean-correct images only).
                marginal = sum(1 for i, (c, s) in imgs.items()
                               if c and not s and all(o.get(i, (1, 1))[1] for lab, o in by_label.items() if lab != label))
                table.setdefault(norm, {}).setdefault(eps, {})[label] = (acc, len(imgs), marginal)
    return table, ensemble


def run(args):
    db = open_index(args.results_dir)
    rows = attack_rows(db)
    if not rows:
        raise AnalysisError(f"{args.results_dir}: no attack results here (a sweep with an fgsm section writes them)")
    table, ensemble = summarize(rows)
    view = {(n, e): a for n, e, a in db.execute("SELECT norm, eps, robust_accuracy FROM robust_accuracy")}
    norms = sorted(table)
    fig, axes = plt.subplots(1, len(norms), figsize=(6 * len(norms), 4.2), squeeze=False)
    out = []
    for ax, norm in zip(axes[0], norms):
        eps_list = sorted(table[norm])
        labels = sorted({lab for e in eps_list for lab in table[norm][e]})
        print(f"\n{norm}: robust accuracy (images the model classifies correctly and no attack at that eps changed; "
              f"marginal: images only that attack broke)")
        width = max(len(lab) for lab in labels + ["ensemble"])
        print(f"  {'attack':<{width}} " + " ".join(f"{'eps ' + f'{e:g}':>18}" for e in eps_list))
        for lab in labels:
            cells = []
            for e in eps_list:
                if lab in table[norm][e]:
                    acc, n, marginal = table[norm][e][lab]
                    cells.append(f"{acc:8.4f} (+{marginal:>4}) ")
                    out.append((norm, e, lab, n, acc, marginal))
                else:
                    cells.append(f"{'':>18}")
            print(f"  {lab:<{width}} " + " ".join(cells))
            xs = [e for e in eps_list if lab in table[norm][e]]
            ax.plot(xs, [table[norm][e][lab][0] for e in xs], "-o", ms=3, lw=1, label=lab)
        ens = [view.get((norm, e), ensemble[norm][e][0]) for e in eps_list]
        print(f"  {'ensemble':<{width}} " + " ".join(f"{a:8.4f}{'':>10}" for a in ens))
        out += [(norm, e, "ensemble", ensemble[norm][e][1], a, "") for e, a in zip(eps_list, ens)]
        ax.plot(eps_list, ens, "-", color="black", lw=2.5, label="ensemble (no attack succeeded)")
        ax.set_xlabel(f"eps ({norm}, pixel space)")
        ax.set_ylabel("robust accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{norm}: {len(labels)} attack settings", fontsize=9)
        ax.legend(fontsize=6, loc="best")
    save_figure_and_table(fig, args.output, args.csv, ["norm", "eps", "attack", "images", "robust_accuracy", "marginal"],
                          out)
    return 0


def add_parser(sub):
    p = sub.add_parser("robust", help="robust accuracy against eps: per attack and the ensemble",
                       description="Robust accuracy against eps, one curve per attack setting and one for the "
                                   "ensemble (no attack at that eps changed the label), and each attack's marginal "
                                   "gain (the images only it broke).")
    p.add_argument("results_dir")
    p.add_argument("-o", "--output", default="robust.png", help="the figure (default robust.png)")
    p.add_argument("--csv", help="also write the table as CSV")
    p.set_defaults(run=run)
