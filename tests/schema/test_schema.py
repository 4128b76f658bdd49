"""results_schema.sql as vizsweep writes it (`vizsweep schema`: the file with the declared
columns and technique lists filled in): loads, is idempotent, enforces its constraints, and its
views compute what an independent computation over the raw rows gives.

    test_schema.py VIZSWEEP"""
import os
import sqlite3
import subprocess
import sys
import unittest

VIZSWEEP = sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "runner", "vizsweep")
SCHEMA = subprocess.run([VIZSWEEP, "schema"], check=True, capture_output=True, text=True).stdout


def fresh():
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    db.execute("INSERT INTO sweeps (sweep_id, name, spec_text, spec_hash, model_path, model_hash, "
               "vizsweep_version, torch_version) VALUES (1, 's', 'x', 'h', 'm.pt', 'mh', '0.1.0', '1.13')")
    return db


def add_task(db, key, technique, layer, setting_id, state="done", error=None):
    db.execute("INSERT INTO tasks (task_key, sweep_id, technique, layer, units, setting_id, seed, state, error) "
               "VALUES (?, 1, ?, ?, '0-3', ?, 7, ?, ?)", (key, technique, layer, setting_id, state, error))


class SchemaTest(unittest.TestCase):
    def test_idempotent_and_versioned(self):
        db = fresh()
        db.executescript(SCHEMA)  # again: no error, nothing duplicated
        self.assertEqual(db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchall(), [("1.9",)])
        self.assertEqual(db.execute("SELECT COUNT(*) FROM sweeps").fetchone()[0], 1)

    def test_task_state_is_constrained(self):
        db = fresh()
        with self.assertRaises(sqlite3.IntegrityError):
            add_task(db, "a", "actmax", "conv1_1", None, state="finished")
        with self.assertRaises(sqlite3.IntegrityError):
            add_task(db, "b", "actmax", "conv1_1", None, state="failed")  # failed needs a reason
        with self.assertRaises(sqlite3.IntegrityError):
            add_task(db, "c", "deepdream", "conv1_1", None)
        add_task(db, "d", "actmax", "conv1_1", None, state="failed", error="NaN or Inf")
        with self.assertRaises(sqlite3.IntegrityError):
            add_task(db, "d", "actmax", "conv1_1", None)  # one row per key

    def test_actmax_view_matches_raw_rows(self):
        db = fresh()
        for sid, name in ((1, "unregularized"), (2, "yosinski3")):
            # Columns by name, as the runner writes them: the columns added since 1.1 take
            # their defaults.
            db.execute("INSERT INTO actmax_settings (setting_id, name, objective, iterations, lr_policy, lr, "
                       "progress_target, decay, blur_radius, blur_every, norm_pct, contrib_pct, init_std) "
                       "VALUES (?, ?, 'centre', 200, 'normalized', 2, 2, 0, 0, 0, 0, 0, 10)", (sid, name))
        add_task(db, "t1", "actmax", "conv1_1", 1)
        add_task(db, "t2", "actmax", "conv1_1", 2)
        add_task(db, "t3", "actmax", "conv1_1", 2, state="running")  # not counted until done
        rows = []
        for key, unit, act, hf, arg in (("t1", 0, 5.0, 0.8, 1), ("t1", 1, 7.0, 0.6, 0), ("t2", 0, 2.0, 0.1, 1),
                                        ("t3", 0, 100.0, 0.0, 1)):
            db.execute("INSERT INTO actmax_results VALUES (?, ?, ?, ?, 0, 0, 1, ?, 'shards/r0.h5', '/x', NULL, NULL, ?, NULL, NULL, 0)",
                       (key, unit, act, hf, arg, 1 - hf))
            rows.append((key, act, hf, arg))
        got = {r[0]: r[1:] for r in db.execute(
            "SELECT setting, units, mean_activation, mean_hf_energy, argmax_rate, ROUND(mean_score, 6) "
            "FROM actmax_by_layer_setting")}
        self.assertEqual(got["unregularized"], (2, 6.0, 0.7, 0.5, 0.3))
        self.assertEqual(got["yosinski3"], (1, 2.0, 0.1, 1.0, 0.9))
        with self.assertRaises(sqlite3.IntegrityError):
            db.execute("INSERT INTO actmax_results VALUES ('t1', 0, 1, 1, 0, 0, 1, 1, 's', '/d', NULL, NULL, 0, NULL, NULL, 0)")
        with self.assertRaises(sqlite3.IntegrityError):  # a score outside [0, 1]
            db.execute("INSERT INTO actmax_results VALUES ('t2', 5, 1, 1, 0, 0, 1, 1, 's', '/d', NULL, NULL, 1.5, NULL, NULL, 0)")

    def test_exemplars_view_merges_shards_in_the_total_order(self):
        db = fresh()
        add_task(db, "e1", "exemplars", "*", None)
        add_task(db, "e2", "exemplars", "*", None)
        add_task(db, "e3", "exemplars", "*", None, state="running")  # not merged until done
        for i in range(12):
            db.execute("INSERT INTO images (technique, image_id, source) VALUES ('exemplars', ?, ?)", (i, f"ds#{i}"))
        # k = 3 per shard; (task, kind, [(image, activation)] in the shard's order)
        lists = (("e1", "top", [(0, 5.0), (3, 4.0), (1, 4.0)]), ("e2", "top", [(6, 4.0), (7, 3.0), (8, 2.0)]),
                 ("e3", "top", [(10, 9.0), (11, 8.0), (9, 7.0)]),
                 ("e1", "bottom", [(2, -1.0), (4, 0.0), (5, 0.5)]), ("e2", "bottom", [(7, -1.0), (6, 0.0), (8, 0.5)]))
        for key, kind, entries in lists:
            for rank, (image, act) in enumerate(entries, 1):
                db.execute("INSERT INTO exemplar_results VALUES (?, 'conv1_1', 0, ?, ?, ?, ?, 0, 0, 0, 3, 0, 3, 's', '/d')",
                           (key, kind, rank, image, act))
        got = db.execute("SELECT kind, rank, image_id, activation, source FROM exemplars ORDER BY kind DESC, rank").fetchall()
        # ties (4.0: images 1, 3, 6; -1.0: images 2, 7) go to the lower image id
        self.assertEqual(got, [("top", 1, 0, 5.0, "ds#0"), ("top", 2, 1, 4.0, "ds#1"), ("top", 3, 3, 4.0, "ds#3"),
                               ("bottom", 1, 2, -1.0, "ds#2"), ("bottom", 2, 7, -1.0, "ds#7"), ("bottom", 3, 4, 0.0, "ds#4")])
        with self.assertRaises(sqlite3.IntegrityError):  # kinds are top or bottom
            db.execute("INSERT INTO exemplar_results VALUES ('e1', 'conv1_1', 0, 'middle', 1, 0, 1, 0, 0, 0, 3, 0, 3, 's', '/d')")

    def test_fgsm_success_counts_correct_clean_images_only(self):
        db = fresh()
        db.execute("INSERT INTO fgsm_settings (setting_id, name, eps, steps, step_size, targeted) "
                   "VALUES (1, 'e0.1', 0.1, 10, 0.025, 0)")
        add_task(db, "f", "fgsm", "*", 1)
        # (true, clean_pred, final_pred): 3 correct clean images, 2 of them flipped; 1 wrong from the start.
        for i, (y, c, p) in enumerate(((1, 1, 2), (3, 3, 3), (4, 4, 0), (5, 6, 7))):
            db.execute("INSERT INTO fgsm_results (task_key, image_id, true_label, target, clean_pred, final_pred, success, "
                       "shard, dataset) VALUES ('f', ?, ?, NULL, ?, ?, ?, 's', '/d')", (i, y, c, p, int(p != y)))
        eps, steps, images, correct, adv_acc, rate, attack = db.execute(
            "SELECT eps, steps, images, clean_correct, adversarial_accuracy, success_rate, attack FROM fgsm_success").fetchone()
        self.assertEqual((eps, steps, images, correct, attack), (0.1, 10, 4, 3, "fgsm"))
        self.assertAlmostEqual(adv_acc, 0.25)
        self.assertAlmostEqual(rate, 2 / 3)

    def test_robust_flag_is_the_ensembles(self):
        """An image is robust at (norm, eps) when it is classified correctly and no attack at that
        budget changed its label; each attack alone has its own figure."""
        db = fresh()
        db.execute("INSERT INTO fgsm_settings (setting_id, name, eps, steps, attack) VALUES (1, 'bim', 0.1, 10, 'fgsm')")
        db.execute("INSERT INTO fgsm_settings (setting_id, name, eps, steps, attack, restarts) "
                   "VALUES (2, 'pgd', 0.1, 10, 'pgd', 2)")
        db.execute("INSERT INTO fgsm_settings (setting_id, name, eps, steps, attack, norm) VALUES (3, 'l2', 0.1, 10, 'pgd', 'l2')")
        for key, sid in (("b", 1), ("p", 2), ("l", 3)):
            add_task(db, key, "fgsm", "*", sid)
        rows = {  # image: (true, clean) and the final prediction under bim, pgd, the L2 attack
            0: (1, 1, 2, 1, 1), 1: (3, 3, 3, 5, 3), 2: (4, 4, 0, 4, 4), 3: (5, 6, 6, 6, 6), 4: (2, 2, 2, 2, 7)}
        for i, (y, c, *finals) in rows.items():
            for key, p in zip("bpl", finals):
                db.execute("INSERT INTO fgsm_results (task_key, image_id, true_label, clean_pred, final_pred, success, shard, "
                           "dataset, run) VALUES (?, ?, ?, ?, ?, ?, 's', '/d', 0)", (key, i, y, c, p, int(p != y)))
        robust = dict(((n, i), r) for n, i, r in db.execute("SELECT norm, image_id, robust FROM robust_images"))
        # linf: bim breaks 0 and 2, pgd breaks 1; 3 was wrong from the start; only 4 survives both.
        self.assertEqual({i: robust[("linf", i)] for i in range(5)}, {0: 0, 1: 0, 2: 0, 3: 0, 4: 1})
        # l2 (its own budget): only image 4 broken, 3 wrong from the start.
        self.assertEqual({i: robust[("l2", i)] for i in range(5)}, {0: 1, 1: 1, 2: 1, 3: 0, 4: 0})
        acc = dict(((n, e), (k, c, r)) for n, e, k, c, r in db.execute(
            "SELECT norm, eps, images, clean_accuracy, robust_accuracy FROM robust_accuracy"))
        self.assertEqual(acc[("linf", 0.1)], (5, 0.8, 0.2))
        self.assertEqual(acc[("l2", 0.1)], (5, 0.8, 0.6))
        alone = dict(((a, n), r) for a, n, r in db.execute("SELECT attack, norm, robust_accuracy FROM attack_accuracy"))
        self.assertEqual(alone, {("fgsm", "linf"): 0.4, ("pgd", "linf"): 0.6, ("pgd", "l2"): 0.6})
        for (n, _), (_, _, ens) in acc.items():
            self.assertTrue(all(ens <= r for (a, m), r in alone.items() if m == n))

if __name__ == "__main__":
    sys.exit(unittest.main())
