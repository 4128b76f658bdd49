"""Bad input across sweep files, command-line options, model files, images and results
directories: each case gives exit code 2 and one clear message naming the field, file or
option, and writes nothing (no results directory, or an existing one left byte-identical).
Hostile names and paths are refused the same way.

Run by ctest with Debian's /usr/bin/python3; VIZSWEEP is the binary's path."""
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, ROOT)
from analysis.index import write_png  # noqa: E402

VIZSWEEP = os.environ.get("VIZSWEEP", os.path.join(ROOT, "build", "runner", "vizsweep"))
PYTHON = "/usr/bin/python3"
# The sanitizer build's pass leaves out `plan` on each sweep-file case (see tests/CMakeLists.txt).
PLAN_TOO = os.environ.get("VIZSWEEP_SANITIZED", "0") != "1"
TINY = "model: {builtin: vgg11, width: 0.0625, in_channels: 1, num_classes: 10, fc_width: 32, pool: 1, input_size: 32}\n"
ACT = "actmax: {layers: [conv1_1], units: 0-1, grid: {iterations: 2}}\n"
FMAP = "featuremaps:\n  layers: [conv1_1]\n  images: [{img}]\n"

# (label, sweep file text or None, extra args (SWEEP and OUT substituted), expected message)
SWEEP_CASES = [
    ("malformed YAML", "name: x\nactmax: [unclosed\n", None, "sweep.yaml:3"),
    ("empty file", "", None, "sweep.yaml:1: sweep: expected a mapping"),
    ("wrong type", TINY + "actmax: {layers: [conv1_1], grid: {iterations: many}}\n", None,
     "actmax.grid.iterations: expected a number, got 'many'"),
    ("unknown key", TINY + "actmax: {layers: [conv1_1], colour: red}\n", None, "actmax.colour: unknown key"),
    ("unknown top-level key", TINY + ACT + "colour: red\n", None, "colour: unknown key"),
    ("empty grid", TINY + "actmax: {layers: [conv1_1], grid: {blur_radius: []}}\n", None,
     "actmax.grid.blur_radius: empty list"),
    ("huge grid", TINY + "actmax: {layers: [conv1_1], grid: {" + ", ".join(
        f"{k}: [{', '.join(str(v) for v in range(1, 11))}]"
        for k in ("lr", "blur_radius", "blur_every", "norm_pct", "contrib_pct", "init_std")) + "}}\n", None,
     "actmax.grid: grid has more than 100000 settings"),
    ("negative iterations", TINY + "actmax: {layers: [conv1_1], grid: {iterations: -5}}\n", None,
     "actmax.grid: iterations: setting grid: must be >= 1, got -5"),
    ("zero iterations", TINY + "actmax: {layers: [conv1_1], grid: {iterations: 0}}\n", None,
     "actmax.grid: iterations: setting grid: must be >= 1, got 0"),
    ("eps out of range", TINY + "fgsm: {images: {dataset: fashion-mnist, count: 2}, eps: [1.5]}\n", None, "fgsm.eps"),
    ("attack eps below 0", TINY + "fgsm: {images: {dataset: fashion-mnist, count: 2}, attack: pgd, eps: [-0.1]}\n", None,
     "fgsm.eps: must be >= 0 (pixel space), got -0.1"),
    ("attack with no restarts", TINY + "fgsm: {images: {dataset: fashion-mnist, count: 2}, attack: pgd, eps: 0.1, restarts: 0}\n",
     None, "fgsm.restarts: must be in [1, 10000], got 0"),
    ("unknown attack", TINY + "fgsm: {images: {dataset: fashion-mnist, count: 2}, attack: [pgd, cw], eps: 0.1}\n", None,
     "fgsm.attack: unknown attack 'cw' (have fgsm, pgd, mifgsm, apgd-ce, apgd-dlr)"),
    ("unknown norm", TINY + "fgsm: {images: {dataset: fashion-mnist, count: 2}, norm: l1, eps: 0.1}\n", None,
     "fgsm.norm: unknown norm 'l1' (have linf, l2)"),
    ("targeted on a one-class model", TINY.replace("num_classes: 10", "num_classes: 1") +
     "fgsm: {images: {dataset: fashion-mnist, count: 2}, eps: 0.1, targeted: true}\n", None,
     "fgsm.targeted: a targeted attack needs another class to aim at; the model has 1"),
    ("apgd-dlr on a three-class model", TINY.replace("num_classes: 10", "num_classes: 3") +
     "fgsm: {images: {dataset: fashion-mnist, count: 2}, eps: 0.1, attack: apgd-dlr}\n", None,
     "fgsm.attack: apgd-dlr's loss needs at least 4 classes; the model has 3"),
    ("units out of range", TINY + "actmax: {layers: [conv1_1], units: 0-999}\n", None, "actmax.units"),
    ("unknown layer", TINY + "actmax: {layers: [conv9_9]}\n", None, 'actmax.layers[0]: no layer "conv9_9"'),
    ("no technique", TINY, None, "sweep.yaml:1"),
    ("objective that does not parse", TINY + "actmax: {layers: [conv1_1], objective: \"unit + \"}\n", None,
     "actmax.objective: at 8 of 'unit + ': expected a term"),
    ("objective channel out of range", TINY + "actmax: {layers: [conv1_1], objective: \"unit - unit(99)\"}\n", None,
     "actmax.objective: channel 99 out of range"),
    ("unknown transform in the order", TINY + "actmax: {layers: [conv1_1], transform_order: [twist]}\n", None,
     "actmax.transform_order[0]: no transform 'twist'"),
    ("diversity layer after the mapped one", TINY + "actmax: {layers: [conv1_1], diversity: 2, diversity_layer: fc8}\n", None,
     "actmax.diversity_layer: fc8 comes after conv1_1"),
    ("search eta below 2", TINY + "actmax: {layers: [conv1_1], search: {eta: 1}}\n", None,
     "actmax.search.eta: must be in [2, 100], got 1"),
    ("search minimum above its maximum", TINY + "actmax: {layers: [conv1_1], search: {min_iterations: 50, max_iterations: 10}}\n",
     None, "actmax.search.min_iterations: must be at most max_iterations (10), got 50"),
    ("search metric not in the metrics table", TINY + "actmax: {layers: [conv1_1], search: {metric: beauty, units: 2}}\n", None,
     "actmax.search.metric: no actmax metric 'beauty' in the index's metrics table"),
    ("search metric without exemplars", TINY + "actmax: {layers: [conv1_1], search: {metric: mis, units: 2}}\n", None,
     "actmax.search.metric: mis needs natural exemplars of every searched layer"),
    ("search sample larger than the layer", TINY + "actmax: {layers: [conv1_1], search: {units: 5}}\n", None,
     "actmax.search.units: 5 is more than conv1_1 has to sample (4)"),
    ("name escaping the results directory", "name: ../evil\n" + TINY + ACT, None,
     "name: use letters, digits, '_', '.', '-'"),
    ("absolute name", "name: /tmp/evil\n" + TINY + ACT, None, "name: use letters"),
    ("too many images", TINY + "fgsm: {images: {dataset: fashion-mnist, split: test, start: 9990, count: 20}}\n",
     None, "fgsm.images"),
    ("unknown dataset", TINY + "fgsm: {images: {dataset: imagenet, count: 2}}\n", None, "unknown dataset 'imagenet'"),
    ("threads out of range", TINY + ACT + "threads: -1\n", None, "threads"),
    ("zero attempts", TINY + ACT + "max_attempts: 0\n", None, "max_attempts"),
    ("missing image file", TINY + FMAP.format(img="nowhere.png"), None, "featuremaps.images[0]: no such image file"),
    # per-layer compute formats
    ("unknown precision for a layer", TINY + ACT + "compute:\n  conv1_1: {precision: fp8}\n", None,
     "compute.conv1_1.precision: expected fp32, bf16 or fp16, got 'fp8'"),
    ("fp16 for a layer on a CPU", "device: cpu\n" + TINY + ACT + "compute:\n  conv1_1: {precision: fp16}\n", None,
     "compute.conv1_1.precision: fp16 needs device: cuda"),
    ("per-layer format of a layer not in the model", TINY + ACT + "compute:\n  conv9_9: {precision: bf16}\n", None,
     'compute.conv9_9: no layer "conv9_9" in vgg11'),
    ("fp32 finish out of range", "precision: bf16\nfp32_finish: 1.5\n" + TINY + ACT, None,
     "fp32_finish: must be in [0, 1]"),
    ("fp32 finish for a layer in fp32", TINY + ACT + "compute:\n  conv1_1: {precision: fp32, fp32_finish: 0.04}\n", None,
     "compute.conv1_1.fp32_finish: needs a reduced precision"),
    # exemplars
    ("k of 0", TINY + "exemplars: {layers: [conv1_1], images: {dataset: fashion-mnist, count: 20}, k: 0}\n", None,
     "exemplars.k: must be in [1, 1000], got 0"),
    ("k above the dataset size", TINY + "exemplars: {layers: [conv1_1], images: {dataset: fashion-mnist, count: 20}, k: 21}\n",
     None, "exemplars.k: must be at most the 20 images scanned, got 21"),
    ("empty folder", TINY + "exemplars: {layers: [conv1_1], images: {folder: emptydir}}\n", None,
     "exemplars.images.folder: no PNG or JPEG images in {dir}/emptydir"),
    ("folder of other files only", TINY + "exemplars: {layers: [conv1_1], images: {folder: textdir}}\n", None,
     "exemplars.images.folder: no PNG or JPEG images in {dir}/textdir (2 other files)"),
    ("image-named file that is not one", TINY + "exemplars: {layers: [conv1_1], images: {folder: baddir}}\n", None,
     "exemplars.images.folder: not a PNG or JPEG image: {dir}/baddir/sub/junk.png"),
    ("missing folder", TINY + "exemplars: {layers: [conv1_1], images: {folder: nowhere}}\n", None,
     "exemplars.images.folder: no such folder: {dir}/nowhere"),
    ("slice past the end", TINY + "exemplars: {layers: [conv1_1], images: {dataset: fashion-mnist, start: 10000}}\n", None,
     "exemplars.images.start: slice starts past the end of the 10000 images"),
    ("folder slice past the end", TINY + "exemplars: {layers: [conv1_1], images: {folder: baddir/ok, start: 1, count: 2}}\n", None,
     "exemplars.images.count: slice 1+2 exceeds the 2 images of {dir}/baddir/ok"),
    ("shards off the batch", TINY + "exemplars: {layers: [conv1_1], images: {dataset: fashion-mnist, count: 300}, batch: 64, "
     "images_per_task: 100}\n", None, "exemplars.images_per_task: must be a multiple of exemplars.batch (64), got 100"),
    ("unknown position", TINY + "exemplars: {layers: [conv1_1], images: {dataset: fashion-mnist, count: 20}, position: middle}\n",
     None, "exemplars.position: unknown position 'middle' (valid: max, centre)"),
    ("feature layer of a layer not scanned", TINY + ACT + "exemplars: {layers: [conv1_1], images: {dataset: fashion-mnist, "
     "count: 20}, bottom: true, feature_layer: {conv2_1: '2'}}\n", None,
     "exemplars.feature_layer.conv2_1: 'conv2_1' is not a layer of this exemplars section (conv1_1)"),
    ("feature layer the feature model has not", TINY + ACT + "exemplars: {layers: [conv1_1], images: {dataset: fashion-mnist, "
     f"count: 20}}, bottom: true, feature_model: {ROOT}/models/fashion_judge.pt, feature_layer: nope}}\n", None,
     f"exemplars.feature_layer: {ROOT}/models/fashion_judge.pt has no tap 'nope'"),
    ("exemplar units out of range", TINY + "exemplars: {layers: [conv1_1, fc8], units: 0-9, images: {dataset: fashion-mnist, "
     "count: 20}}\n", None, "exemplars.units: unit 9 out of range for conv1_1"),
    # model files
    ("missing model file", "model: {file: nowhere.pt}\n" + ACT, None, "nowhere.pt"),
    ("truncated model file", "model: {file: truncated.pt}\n" + ACT, None, "truncated.pt"),
    ("random bytes as model", "model: {file: junk.pt}\n" + ACT, None, "junk.pt"),
    ("TorchScript that is no classifier", "model: {file: not_vgg.pt}\n" + ACT, None,
     "not_vgg.pt: forward returns a [1, 4, 222, 222] tensor for one image, not logits [1, K]"),
    ("TorchScript of two inputs", "model: {file: two_inputs.pt}\n" + ACT, None,
     "two_inputs.pt: forward takes 2 inputs; one image tensor"),
    ("TorchScript returning a tuple", "model: {file: tuple_output.pt}\n" + ACT, None,
     "tuple_output.pt: forward returns Tuple[Tensor, Tensor], not a tensor of logits"),
    ("graph model: a tap that does not exist", "model: {file: " + os.path.join(ROOT, "models", "fashion_judge.pt") +
     "}\nactmax: {layers: [3.conv3], units: 0-1, grid: {iterations: 2}}\n", None,
     "actmax.layers[0]: no layer \"3.conv3\" in resnet_small (has 52 taps: 0, 1, 2, ..., 11; vizsweep layers MODEL lists them)"),
    ("graph model: the nearest names", "model: {file: " + os.path.join(ROOT, "models", "fashion_judge.pt") +
     "}\nactmax: {layers: [3.conv3], units: 0-1, grid: {iterations: 2}}\n", None, "nearest: 3.conv1, 3.conv2"),
    ("graph model: a glob that matches nothing", "model: {file: " + os.path.join(ROOT, "models", "fashion_judge.pt") +
     "}\nactmax: {layers: [\"layer*.conv1\"], units: 0-1, grid: {iterations: 2}}\n", None,
     "actmax.layers[0]: no layer matches \"layer*.conv1\" in resnet_small"),
    ("unknown built-in architecture", "model: {builtin: vgg99}\n" + ACT, None, "model.builtin"),
    # images
    ("image that is not an image", TINY + FMAP.format(img="junk.png"), None,
     "featuremaps.images[0]: {dir}/junk.png: not a readable PNG or JPEG image"),
    ("empty image file", TINY + FMAP.format(img="empty.png"), None, "featuremaps.images[0]"),
    ("image too small", TINY + FMAP.format(img="tiny.png"), None,
     "featuremaps.images[0]: {dir}/tiny.png: image is 4x4 pixels; need at least 8x8"),
    # command line
    ("unknown option", TINY + ACT, ["--frobnicate"], "frobnicate"),
    ("bad journal mode", TINY + ACT, ["--journal", "nfs"], "--journal: expected wal or delete"),
    ("threads not a number", TINY + ACT, ["--threads", "abc"], "threads"),
    ("output path is a file", TINY + ACT, ["--out", "{dir}/afile"], "{dir}/afile"),
]


class BadInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vizsweep_bad_")
        t = cls.tmp
        with open(os.path.join(ROOT, "models", "fashion_vgg11.pt"), "rb") as f:
            model = f.read()
        with open(os.path.join(t, "truncated.pt"), "wb") as f:
            f.write(model[:len(model) // 2])
        with open(os.path.join(t, "junk.pt"), "wb") as f:
            f.write(os.urandom(4096))
        subprocess.run([PYTHON, os.path.join(ROOT, "tests", "kernels", "make_not_vgg.py"), os.path.join(t, "not_vgg.pt")],
                       check=True, capture_output=True, timeout=300)
        with open(os.path.join(t, "junk.png"), "w") as f:
            f.write("this is not a PNG")
        open(os.path.join(t, "empty.png"), "w").close()
        import numpy as np
        write_png(os.path.join(t, "tiny.png"), np.zeros((4, 4), np.uint8))
        os.makedirs(os.path.join(t, "emptydir", "sub"))
        os.makedirs(os.path.join(t, "textdir"))
        for name in ("README.txt", "labels.csv"):
            with open(os.path.join(t, "textdir", name), "w") as f:
                f.write("not an image")
        os.makedirs(os.path.join(t, "baddir", "sub"))
        os.makedirs(os.path.join(t, "baddir", "ok"))
        shutil.copy(os.path.join(t, "junk.png"), os.path.join(t, "baddir", "sub", "junk.png"))
        for name in ("a.png", "b.png"):
            write_png(os.path.join(t, "baddir", "ok", name), np.full((28, 28), 128, np.uint8))
        with open(os.path.join(t, "afile"), "w") as f:
            f.write("a file, not a directory")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def vizsweep(self, *args):
        return subprocess.run([VIZSWEEP, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    def listing(self):
        return sorted(os.listdir(self.tmp))

    def test_sweep_model_image_and_option_errors(self):
        n = 0
        for label, text, extra, message in SWEEP_CASES:
            with self.subTest(label):
                sweep = os.path.join(self.tmp, "sweep.yaml")
                with open(sweep, "w") as f:
                    f.write(text)
                out = os.path.join(self.tmp, "out")
                before = self.listing()
                args = ["run", sweep] + ([a.format(dir=self.tmp) for a in extra] if extra else [])
                if "--out" not in args:
                    args += ["--out", out]
                r = self.vizsweep(*args)
                self.assertEqual(r.returncode, 2, f"{label}: {r.stdout}{r.stderr}")
                self.assertIn(message.format(dir=self.tmp), r.stderr, label)
                self.assertNotIn("terminate called", r.stderr, label)
                written = os.path.exists(out)
                shutil.rmtree(out, ignore_errors=True)  # one failure does not spoil the next cases
                self.assertFalse(written, f"{label}: nothing written")
                self.assertEqual(self.listing(), before, f"{label}: nothing written")
                if PLAN_TOO and text and "model" in text and extra is None:
                    p = self.vizsweep("plan", sweep)  # plan validates the same way
                    self.assertEqual(p.returncode, 2, f"plan, {label}")
                n += 1
        print(f"{n} sweep, model, image and option cases: each exit 2 with its message, nothing written")
        self.assertGreaterEqual(n, 30)

    def test_commands_and_results_directories(self):
        good = os.path.join(self.tmp, "good.yaml")
        with open(good, "w") as f:
            f.write("name: good\n" + TINY + ACT)
        d = os.path.join(self.tmp, "good-results")
        self.assertEqual(self.vizsweep("run", good, "--out", d).returncode, 0)

        def digest():
            h = hashlib.sha256()
            for root, _, files in sorted(os.walk(d)):
                for name in sorted(files):
                    if name == ".vizsweep.lock":
                        continue
                    with open(os.path.join(root, name), "rb") as f:
                        h.update(name.encode() + f.read())
            return h.hexdigest()

        other = os.path.join(self.tmp, "other.yaml")
        with open(other, "w") as f:
            f.write("name: good\n" + TINY + "actmax: {layers: [conv1_1], units: 0-2, grid: {iterations: 2}}\n")
        cases = [
            (["frobnicate"], "unknown command 'frobnicate'"),
            (["run"], "sweep"),
            (["status", os.path.join(self.tmp, "nowhere")], "no index here"),
            (["verify", os.path.join(self.tmp, "nowhere")], "nowhere"),
            (["slurm", good, "--nodes", "0", "--time", "10"], "--nodes"),
            (["slurm", good, "--nodes", "1", "--time", "soon"], "--time"),
            (["run", other, "--out", d], "holds sweep 'good' (spec hash"),
            (["run", good, "--out", d, "--noop-tasks"], "--noop-tasks: needs a new results directory"),
            (["plan", good, "--out", d, "--ranks", "-2"], "--ranks: must be >= 0, got -2"),
            (["tune", good, "--out", d, "--ranks", "0"], "--ranks: must be >= 1, got 0"),
            (["tune", good, "--out", d, "--units", "0"], "--units: must be >= 1, got 0"),
            (["tune", good, "--out", d, "--iters", "-5"], "--iters: must be >= 1, got -5"),
            (["tune", good, "--out", d, "--repeats", "0"], "--repeats: must be >= 1, got 0"),
        ]
        before = digest()
        for args, message in cases:
            with self.subTest(args[0]):
                r = self.vizsweep(*args)
                self.assertEqual(r.returncode, 2, f"{args}: {r.stderr}")
                self.assertIn(message, r.stderr, args)
        self.assertEqual(digest(), before, "the results directory is unchanged")

        # an index of another schema major version
        db = sqlite3.connect(os.path.join(d, "index.sqlite"))
        db.execute("UPDATE meta SET value='2.0' WHERE key='schema_version'")
        db.commit()
        db.close()
        before = digest()
        r = self.vizsweep("run", good, "--out", d)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("index schema version 2.0 differs from this vizsweep's 1.x", r.stderr)
        self.assertEqual(digest(), before)
        # an index that is not a database at all
        with open(os.path.join(d, "index.sqlite"), "wb") as f:
            f.write(b"garbage" * 1000)
        for name in ("index.sqlite-wal", "index.sqlite-shm"):
            if os.path.exists(os.path.join(d, name)):
                os.remove(os.path.join(d, name))
        before = digest()
        r = self.vizsweep("run", good, "--out", d)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("index.sqlite", r.stderr)
        self.assertEqual(digest(), before)

    def test_an_index_of_an_older_minor_version_is_migrated(self):
        good = os.path.join(self.tmp, "migrate.yaml")
        with open(good, "w") as f:
            f.write("name: migrate\n" + TINY + ACT)
        d = os.path.join(self.tmp, "migrate")
        self.assertEqual(self.vizsweep("run", good, "--out", d).returncode, 0)
        db = sqlite3.connect(os.path.join(d, "index.sqlite"))
        db.execute("ALTER TABLE fgsm_steps DROP COLUMN final_prob")  # what a 1.0 index looks like
        db.execute("UPDATE meta SET value='1.0' WHERE key='schema_version'")
        db.commit()
        db.close()
        r = self.vizsweep("run", good, "--out", d)
        self.assertEqual(r.returncode, 0, r.stderr)
        db = sqlite3.connect(os.path.join(d, "index.sqlite"))
        self.assertEqual(db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone(), ("1.9",))  # 1.0 -> 1.9
        self.assertIn("final_prob", [c[1] for c in db.execute("PRAGMA table_info(fgsm_steps)")])
        self.assertEqual(db.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state").fetchall(), [("done", 1)])
        db.close()

    def test_symbolic_links_in_the_results_directory_are_refused(self):
        good = os.path.join(self.tmp, "links.yaml")
        with open(good, "w") as f:
            f.write("name: links\n" + TINY + ACT)
        outside = os.path.join(self.tmp, "outside")
        os.makedirs(outside, exist_ok=True)
        for planted in ("shards", "index.sqlite"):
            with self.subTest(planted):
                d = os.path.join(self.tmp, f"links-{planted}")
                os.makedirs(d, exist_ok=True)
                os.symlink(outside if planted == "shards" else os.path.join(outside, "index.sqlite"),
                           os.path.join(d, planted))
                r = self.vizsweep("run", good, "--out", d)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn(f"{d}/{planted}: is a symbolic link", r.stderr)
                self.assertEqual(os.listdir(outside), [], "nothing written through the link")

    def test_hostile_strings_reach_sql_only_as_parameters(self):
        d = os.path.join(self.tmp, "sql")
        good = os.path.join(self.tmp, "sql.yaml")
        with open(good, "w") as f:
            f.write("name: sql\n" + TINY + ACT)
        self.assertEqual(self.vizsweep("run", good, "--out", d).returncode, 0)
        bad_layer = "conv1_1' OR '1'='1"
        r = subprocess.run([PYTHON, "-m", "analysis", "best", d, "--layer", bad_layer], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"no activation-maximization results for layer {bad_layer!r}", r.stderr)
        r = subprocess.run([PYTHON, "-m", "analysis", "grid", d, "-o", os.path.join(self.tmp, "g.png"), "--setting",
                            "x'); DROP TABLE tasks; --"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no setting named", r.stderr)
        db = sqlite3.connect(os.path.join(d, "index.sqlite"))
        self.assertEqual(db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0], 1)
        # an index whose shard path points outside the results directory is not followed
        db.execute("UPDATE actmax_results SET shard = '../../../etc/passwd'")
        db.commit()
        db.close()
        r = subprocess.run([PYTHON, "-m", "analysis", "grid", d, "-o", os.path.join(self.tmp, "g.png")], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 2)
        self.assertIn("outside the results directory", r.stderr)
        v = self.vizsweep("verify", d)
        self.assertEqual(v.returncode, 1, v.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
