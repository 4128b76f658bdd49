"""vizsweep-train on a subset of Fashion-MNIST: the loss falls and the test accuracy beats
chance (10%) by far; the saved TorchScript carries its record and class names."""
import json
import os
import subprocess
import sys
import tempfile
import unittest
import zipfile

TRAIN, EXPORT = sys.argv[1], sys.argv[2]


class TrainerTest(unittest.TestCase):
    def test_subset(self):
        with tempfile.TemporaryDirectory() as d:
            tmpl, out = os.path.join(d, "t.pt"), os.path.join(d, "m.pt")
            subprocess.run(["/usr/bin/python3", EXPORT, "--arch", "vgg11", "--width", "0.125", "--in-channels", "1",
                            "--num-classes", "10", "--fc-width", "64", "--pool", "1", "--input-size", "32", "-o", tmpl],
                           check=True, capture_output=True)
            r = subprocess.run([TRAIN, "--template", tmpl, "--out", out, "--epochs", "3", "--train-subset", "6000",
                                "--test-subset", "1000", "--lr", "0.002"], capture_output=True, text=True, timeout=500)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(d, "m.json")) as f:
                rec = json.load(f)
            hist = rec["training"]["history"]
            self.assertEqual(len(hist), 3)
            self.assertLess(hist[-1]["train_loss"], hist[0]["train_loss"])
            self.assertGreater(rec["training"]["test_accuracy"], 0.5)  # chance is 0.1
            self.assertEqual(rec["classes"][1], "Trouser")
            with zipfile.ZipFile(out) as z:  # the metadata travels inside the TorchScript file
                name = [n for n in z.namelist() if n.endswith("extra/vizsweep.json")][0]
                self.assertEqual(json.loads(z.read(name))["training"]["test_accuracy"], rec["training"]["test_accuracy"])


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1])
