"""`fgsm`: one figure of an FGSM sweep. Top left: mean probability of the adversarial class (the
attack's final prediction) and of the true class, step by step, one colour per eps. Top right:
success rate against eps, one line per step count. Below: example triplets (clean image,
perturbation, adversarial image) with labels and probabilities."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from analysis.index import AnalysisError, Shards, check_layer, class_names, open_index  # noqa: E402


def settings(db):
    return db.execute("SELECT s.setting_id, s.name, s.eps, s.steps, s.targeted FROM fgsm_settings s "
                      "WHERE s.setting_id IN (SELECT setting_id FROM tasks WHERE technique='fgsm' AND state='done') "
                      "ORDER BY s.targeted, s.eps, s.steps").fetchall()


def step_curves(db, setting_id):
    """[(step, mean P(adversarial class) over successful attacks, mean P(true or target class),
    images)] over the images the model classified correctly (untargeted) or all images (targeted)."""
    # Indexes of schema 1.0 lack final_prob: there the adversarial probability is known only at
    # steps whose prediction already is the final one.
    known = "CASE WHEN st.pred = r.final_pred THEN st.pred_prob END"
    cols = {r[1] for r in db.execute("PRAGMA table_info(fgsm_steps)")}
    adv = f"COALESCE(st.final_prob, {known})" if "final_prob" in cols else known
    return db.execute(
        f"SELECT st.step, AVG(CASE WHEN r.success = 1 THEN {adv} END), "
        "AVG(st.label_prob), COUNT(*) FROM fgsm_steps st "
        "JOIN fgsm_results r ON r.task_key = st.task_key AND r.image_id = st.image_id "
        "JOIN tasks t ON t.task_key = st.task_key AND t.state = 'done' "
        "WHERE t.setting_id = ? AND (r.target IS NOT NULL OR r.clean_pred = r.true_label) "
        "GROUP BY st.step ORDER BY st.step", (setting_id,)).fetchall()


def success(db):
    """{(attack, norm, steps, targeted): [(eps, success rate)]} (indexes before 1.8: fgsm, linf)."""
    out = {}
    cols = {r[1] for r in db.execute("PRAGMA table_info(fgsm_success)")}
    extra = ", attack, norm" if "attack" in cols else ", 'fgsm', 'linf'"
    for eps, steps, targeted, rate, attack, norm in db.execute(
            f"SELECT eps, steps, targeted, success_rate{extra} FROM fgsm_success ORDER BY eps"):
        out.setdefault((attack, norm, steps, targeted), []).append((eps, rate if rate is not None else float("nan")))
    return out


def examples(db, setting_id, n):
    return db.execute(
        "SELECT r.image_id, r.true_label, r.target, r.final_pred, r.shard, r.dataset, "
        "(SELECT pred_prob FROM fgsm_steps st WHERE st.task_key = r.task_key AND st.image_id = r.image_id "
        " ORDER BY st.step LIMIT 1), "
        "(SELECT pred_prob FROM fgsm_steps st WHERE st.task_key = r.task_key AND st.image_id = r.image_id "
        " ORDER BY st.step DESC LIMIT 1) "
        "FROM fgsm_results r JOIN tasks t ON t.task_key = r.task_key AND t.state = 'done' "
        "WHERE t.setting_id = ? AND r.success = 1 AND r.clean_pred = r.true_label ORDER BY r.image_id LIMIT ?",
        (setting_id, n)).fetchall()


def show(ax, img, title):
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    ax.set_title(title, fontsize=7)
    ax.axis("off")


def run(args):
    db = open_index(args.results_dir)
    check_layer(db, None, "fgsm")
    ss = settings(db)
    names = class_names(db)
    if args.setting:
        chosen = [s for s in ss if s[1] == args.setting]
        if not chosen:
            raise AnalysisError(f"--setting: no FGSM setting named {args.setting!r} "
                                f"(have {', '.join(s[1] for s in ss)})")
        chosen = chosen[0]
    else:  # the strongest attack: largest eps, most steps
        chosen = max(ss, key=lambda s: (s[2], s[3]))
    ex = examples(db, chosen[0], args.examples)
    rows = 1 + max(1, (len(ex) + 1) // 2)
    fig = plt.figure(figsize=(11, 3.4 + 2.1 * (rows - 1)), dpi=args.dpi)
    grid = fig.add_gridspec(rows, 6, height_ratios=[3.4] + [2.1] * (rows - 1))

    ax = fig.add_subplot(grid[0, :3])
    colours = plt.cm.viridis(np.linspace(0, 0.9, max(1, len({s[2] for s in ss}))))
    eps_colour = {e: colours[i] for i, e in enumerate(sorted({s[2] for s in ss}))}
    for sid, name, eps, steps, targeted in ss:
        if steps < 2 and any(s[2] == eps and s[3] > 1 for s in ss):
            continue  # the iterative run of the same eps shows its first step too
        curve = step_curves(db, sid)
        st = [c[0] for c in curve]
        ax.plot(st, [c[1] if c[1] is not None else np.nan for c in curve], "-o", ms=3, color=eps_colour[eps],
                label=f"eps {eps:g}, {steps} step{'s' if steps > 1 else ''}: adversarial class")
        ax.plot(st, [c[2] for c in curve], "--", color=eps_colour[eps],
                label=f"eps {eps:g}: {'target' if targeted else 'true'} class")
    ax.set_xlabel("step (0 = clean image)")
    ax.set_ylabel("mean probability")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("mean probability by step (adversarial: over successful attacks)", fontsize=9)
    ax.legend(fontsize=6)

    ax = fig.add_subplot(grid[0, 3:])
    for (attack, norm, steps, targeted), pts in sorted(success(db).items()):
        which = "" if (attack, norm) == ("fgsm", "linf") else f"{attack}{' ' + norm if norm != 'linf' else ''}, "
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "-o", ms=4,
                label=f"{which}{steps} step{'s' if steps > 1 else ''}{' targeted' if targeted else ''}")
    ax.set_xlabel("eps (image in [0, 1]; L-inf unless named)")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("attack success rate against eps", fontsize=9)
    ax.legend(fontsize=7)

    with Shards(args.results_dir) as shards:
        for k, (image_id, true, target, final, shard, dataset, p0, p1) in enumerate(ex):
            g = shards.group(shard, dataset)
            ids = list(g["image_ids"][()])
            pert = g["perturbation"][ids.index(image_id)]
            pert = pert[0] if pert.shape[0] == 1 else np.transpose(pert, (1, 2, 0))
            eps = chosen[2] or 1.0
            vis = np.clip(127.5 + 127.5 * pert / eps, 0, 255)
            r, c = 1 + k // 2, (k % 2) * 3
            show(fig.add_subplot(grid[r, c]), g[f"clean_{image_id}"][()],
                 f"#{image_id}: {names.get(true, true)} ({p0:.2f})")
            show(fig.add_subplot(grid[r, c + 1]), vis, f"perturbation (eps {chosen[2]:g})")
            show(fig.add_subplot(grid[r, c + 2]), g[f"adversarial_{image_id}"][()],
                 f"-> {names.get(final, final)} ({p1:.2f})")
    fig.suptitle(f"FGSM: examples under {chosen[1]}", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.output, dpi=args.dpi)
    plt.close(fig)
    print(f"wrote {args.output}: {len(ss)} settings, {len(ex)} example triplets under {chosen[1]}")
    return 0


def add_parser(sub):
    p = sub.add_parser("fgsm", help="FGSM: probabilities by step, success rate against eps, examples",
                       description=__doc__)
    p.add_argument("results_dir")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--setting", help="setting of the examples (default: largest eps, most steps)")
    p.add_argument("--examples", type=int, default=4, help="example triplets (default 4)")
    p.add_argument("--dpi", type=int, default=100)
    p.set_defaults(run=run)
