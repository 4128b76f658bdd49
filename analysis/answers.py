"""answers: what the index says about a sweep, as tables: per layer the best setting by the
interpretability score, by activation and by naturalness; class images per setting; machine
interpretability per layer and setting; FGSM success; one attack step by step; inversion error by
depth. The quickstart prints these. Each answer is one SQL query over the index's tables and views
(docs/results-layout.md's cookbook shows them), so a reader can run it in sqlite3 as well."""
import sqlite3

from analysis.index import AnalysisError, open_index

# (name, title, SQL). Every answer needs only the tables of its technique; an answer whose
# technique the sweep lacks prints "(no results)".
ANSWERS = [
    ("best_settings",
     "Activation maximization, per layer: the setting with the best interpretability score (the "
     "judge's probability of the class at the output layer, elsewhere mis against the natural "
     "exemplars times the drive), the highest mean activation, and the least high-frequency energy",
     """SELECT layer,
       (SELECT setting FROM actmax_by_layer_setting b WHERE b.layer = a.layer
        ORDER BY mean_score DESC LIMIT 1) AS best_score,
       (SELECT setting FROM actmax_by_layer_setting b WHERE b.layer = a.layer
        ORDER BY mean_activation DESC LIMIT 1) AS highest_activation,
       (SELECT setting FROM actmax_by_layer_setting b WHERE b.layer = a.layer
        ORDER BY mean_hf_energy ASC LIMIT 1) AS least_hf_energy
FROM (SELECT DISTINCT layer FROM actmax_by_layer_setting) a;"""),
    ("class_images",
     "Class images, per setting: how many the model itself puts first (its argmax), how many the "
     "judge recognizes, the judge's mean probability of the class, and the classes the judge misses",
     """SELECT s.name AS setting, SUM(r.is_argmax) || '/' || COUNT(*) AS model_argmax,
       SUM(r.judge_class = r.unit) || '/' || COUNT(*) AS judge_recognizes,
       ROUND(AVG(r.judge_prob), 3) AS judge_prob, ROUND(AVG(r.hf_energy), 3) AS hf_energy,
       COALESCE(GROUP_CONCAT(CASE WHEN r.judge_class <> r.unit THEN c.name END, ', '), '') AS judge_misses
FROM actmax_results r
JOIN tasks t ON t.task_key = r.task_key AND t.state = 'done'
JOIN actmax_settings s ON s.setting_id = t.setting_id
LEFT JOIN classes c ON c.class_id = r.unit
WHERE r.judge_prob IS NOT NULL
GROUP BY s.setting_id ORDER BY AVG(r.score) DESC;"""),
    ("mis_by_layer",
     "Machine interpretability (mis: how often the image is nearer a unit's top than its bottom "
     "exemplars in the judge's feature space; 0.5 = chance) and the image's activation over its top "
     "exemplar's, per layer, best setting first",
     """SELECT layer, setting, ROUND(mean_mis, 3) AS mis, ROUND(mean_activation_ratio, 2) AS activation_ratio
FROM actmax_by_layer_setting WHERE mean_mis IS NOT NULL ORDER BY layer, mean_mis DESC;"""),
    ("judge_and_mis",
     "Class units: the settings ranked by the judge and by mis (do they agree?)",
     """SELECT setting, ROUND(mean_judge_prob, 3) AS judge_prob,
       RANK() OVER (ORDER BY mean_judge_prob DESC) AS judge_rank,
       ROUND(mean_mis, 3) AS mis, RANK() OVER (ORDER BY mean_mis DESC) AS mis_rank
FROM actmax_by_layer_setting WHERE mean_judge_prob IS NOT NULL AND mean_mis IS NOT NULL
ORDER BY judge_rank;"""),
    ("exemplars_of_a_unit",
     "Natural exemplars of one unit (conv3_1's unit 5; in a sweep without conv3_1, unit 5 of the first "
     "layer by name): its top images over the whole dataset, strongest first",
     """SELECT rank, image_id, source, ROUND(activation, 3) AS activation
FROM exemplars
WHERE layer = (SELECT COALESCE(MAX(CASE WHEN layer = 'conv3_1' THEN layer END), MIN(layer)) FROM exemplar_results)
  AND unit = 5 AND kind = 'top' ORDER BY rank;"""),
    ("fgsm_success",
     "FGSM success rate (images the model classified correctly whose label the attack changed)",
     """SELECT eps, steps, images, clean_correct, ROUND(success_rate, 3) AS success_rate,
       ROUND(adversarial_accuracy, 3) AS adversarial_accuracy
FROM fgsm_success ORDER BY targeted, eps, steps;"""),
    ("fgsm_steps",
     "One iterative FGSM attack (the first image a 10-step attack at eps 0.1 fooled), step by step",
     """WITH a AS (SELECT r.task_key, r.image_id FROM fgsm_results r
             JOIN tasks t ON t.task_key = r.task_key
             JOIN fgsm_settings s ON s.setting_id = t.setting_id
             WHERE s.eps = 0.1 AND s.steps = 10 AND s.targeted = 0 AND r.success = 1
             ORDER BY r.image_id LIMIT 1)
SELECT st.step, cp.name AS predicted, ROUND(st.pred_prob, 2) AS its_probability,
       ct.name AS true_class, ROUND(st.label_prob, 2) AS true_probability
FROM fgsm_steps st JOIN a ON a.task_key = st.task_key AND a.image_id = st.image_id
JOIN fgsm_results r ON r.task_key = st.task_key AND r.image_id = st.image_id
LEFT JOIN classes cp ON cp.class_id = st.pred LEFT JOIN classes ct ON ct.class_id = r.true_label
ORDER BY st.step;"""),
    ("inversion_error",
     "Inversion: normalized reconstruction error by layer",
     """SELECT layer, ROUND(mean_rep_error, 4) AS rep_error FROM invert_error_by_layer;"""),
]


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def table(db, sql):
    """(column names, rows as strings) of one query."""
    try:
        cur = db.execute(sql)
    except sqlite3.DatabaseError as e:
        raise AnalysisError(f"the index cannot answer ({e})")
    cols = [d[0] for d in cur.description]
    return cols, [[_cell(v) for v in row] for row in cur.fetchall()]


def text_table(cols, rows):
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def markdown_table(cols, rows):
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def run(args):
    chosen = ANSWERS
    if args.only:
        names = [n for n, _, _ in ANSWERS]
        for n in args.only:
            if n not in names:
                raise AnalysisError(f"--only: no answer named {n!r} (have {', '.join(names)})")
        chosen = [a for a in ANSWERS if a[0] in args.only]
    db = open_index(args.results)
    try:
        for i, (name, title, sql) in enumerate(chosen):
            cols, rows = table(db, sql)
            if args.markdown:
                print(f"{'' if i == 0 else chr(10)}{title} (`{name}`):\n")
                print(markdown_table(cols, rows) if rows else "(no results)")
            else:
                print(f"{'' if i == 0 else chr(10)}{title}:")
                print(text_table(cols, rows) if rows else "(no results)")
    finally:
        db.close()
    return 0


def add_parser(sub):
    p = sub.add_parser("answers", help="the index's answers as tables (what the quickstart prints)",
                       description=__doc__)
    p.add_argument("results", help="results directory")
    p.add_argument("--only", action="append", metavar="NAME",
                   help=f"only this answer (repeat for several): {', '.join(n for n, _, _ in ANSWERS)}")
    p.add_argument("--markdown", action="store_true", help="Markdown tables instead of aligned text")
    p.set_defaults(run=run)
