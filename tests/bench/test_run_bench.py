"""Every section of bench/run_bench.py runs to its end, at toy sizes: one small layer for the
loop-rate and formats sections, a few hundred no-op tasks, an index of one setting per unit of
VGG16, a thousand exemplar images, the small sweep for plan and 200 images attacked. Each section's table is
parsed and its figures must be real measurements (positive rates, a plan ratio, a query time);
a loop rate printed as a number must lie within the peak the same run measured. A section
that fails makes run_bench print "section NAME failed", which fails this test. Speed targets
are not checked here (docs/performance.md holds the full-size run)."""
import os
import re
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.environ.get("VIZSWEEP_BUILD", os.path.join(ROOT, "build"))
TOY = ["--threads", "2", "--units", "1", "--iters", "2", "--repeat", "1", "--layers", "conv1_2", "--format-iters", "2",
       "--tasks", "500", "--rows", "1000", "--exemplar-images", "1000", "--plan-sweeps", "small", "--attack-images", "200",
       "--attack-batches", "50,200", "--build", BUILD]


class RunBench(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with tempfile.TemporaryDirectory() as tmp:
            # --markdown too: the generated block is written for every section, none as failed.
            md = os.path.join(tmp, "perf.md")
            with open(md, "w") as f:
                f.write("# x\n\n<!-- BEGIN run_bench (toy) -->\nold\n<!-- END run_bench -->\n")
            r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run_bench.py")] + TOY + ["--markdown", md],
                               capture_output=True, text=True, timeout=900)
            cls.rc, cls.out, cls.err = r.returncode, r.stdout, r.stderr
            with open(md) as f:
                cls.md = f.read()

    def test_every_section_ran(self):
        self.assertEqual(self.rc, 0, self.err[-2000:])
        self.assertNotIn("failed", self.out, self.out[-3000:])
        for name in ("actmax", "formats", "runner", "index", "exemplars", "plan", "attacks"):
            self.assertRegex(self.md, rf"\*\*{name}\*\* \(", f"no {name} section in the block")
        self.assertNotIn("old", self.md)

    def test_actmax_loop_rate_within_peak(self):
        peak = float(re.search(r"\): ([0-9.]+) GFLOP/s\. GFLOP/s:", self.out).group(1))
        self.assertGreater(peak, 0)
        row = re.search(r"^conv1_2\s+(\d+)x(\d+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+\S+\s+\S+\s+(.*)$", self.out, re.M)
        self.assertIsNotNone(row, self.out)
        self.assertEqual(row.group(1), row.group(2))
        for k in (3, 4, 5):
            self.assertGreater(float(row.group(k)), 0)
        loop = row.group(6).split()
        if loop[0] not in ("unstable", "noise"):  # a number must be a share of the peak
            self.assertLessEqual(float(loop[0]), peak)
            self.assertLessEqual(int(loop[1].rstrip("%")), 100)

    def test_formats(self):
        row = re.search(r"^conv1_2\s+(fp32|bf16)(\+CL)?\s+([0-9.]+)\s+([0-9.]+)\s+(fp32|bf16)(\+CL)?\s+([0-9.]+)", self.out, re.M)
        self.assertIsNotNone(row, self.out)
        self.assertGreater(float(row.group(3)), 0)
        self.assertGreater(float(row.group(7)), 0)

    def test_runner(self):
        rates = re.findall(r"(\d) ranks?\s*:\s+([\d,]+) tasks/s", self.out)
        self.assertEqual([r for r, _ in rates], ["1", "2", "4"])
        for _, v in rates:
            self.assertGreater(int(v.replace(",", "")), 0)

    def test_index(self):
        m = re.search(r"index: ([\d,]+) result rows", self.out)
        self.assertIsNotNone(m, self.out)
        self.assertEqual(int(m.group(1).replace(",", "")), 13416)  # one setting for every unit of VGG16
        self.assertGreater(float(re.search(r"best setting of one layer:\s+([0-9.]+) ms", self.out).group(1)), 0)

    def test_exemplars(self):
        m = re.search(r"exemplars: ([\d,]+) images, every unit of (\d+) layers", self.out)
        self.assertEqual(m.group(1), "1,000")
        self.assertGreater(float(re.search(r"ratio ([0-9.]+)", self.out[m.start():]).group(1)), 0)

    def test_attacks(self):
        peers = re.search(r"peer \(plain PyTorch\) by batch: 50: ([\d,]+), 200: ([\d,]+)", self.out)
        self.assertIsNotNone(peers, self.out)
        ours = re.search(r"vizsweep: ([\d,]+) in its tasks \(([0-9.]+) s\), ([\d,]+) over the whole run", self.out)
        self.assertIsNotNone(ours, self.out)
        for v in (*peers.groups(), ours.group(1), ours.group(3)):
            self.assertGreater(int(v.replace(",", "")), 0)
        self.assertRegex(self.out, r"against the peer at its best batch \((50|200)\): [0-9.]+x \(tasks\)")

    def test_plan(self):
        m = re.search(r"^small\s+([0-9.]+)\s+([0-9.]+) s\s+([0-9.]+) s\s+([0-9.]+)$", self.out, re.M)
        self.assertIsNotNone(m, self.out)
        projected, measured, ratio = float(m.group(2)), float(m.group(3)), float(m.group(4))
        self.assertGreater(projected, 0)
        # The ratio is of the unrounded times; the table shows them to 0.1 s.
        lo, hi = (measured - 0.05) / (projected + 0.05), (measured + 0.05) / max(projected - 0.05, 1e-9)
        self.assertTrue(lo - 0.005 <= ratio <= hi + 0.005, f"ratio {ratio} is not measured over projected: {m.group(0)}")


if __name__ == "__main__":
    unittest.main()
