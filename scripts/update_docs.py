#!/usr/bin/python3
"""Writes the generated parts of the docs from the code that defines them:

  docs/sweep-files.md    the reference (keys, hyperparameters, presets): `vizsweep params --markdown`
  docs/results-layout.md the SQL cookbook: the queries of analysis/answers.py
  README.md              the time per phase: a copy of docs/performance.md's "Quickstart and test run"

and, with --quickstart DIR (a finished quickstart's results directory), the quickstart's answers
in docs/quickstart.md and a sample of them in README.md, naming the machine that ran it.

    /usr/bin/python3 scripts/update_docs.py [--vizsweep build/runner/vizsweep] [--quickstart results/quickstart]
    /usr/bin/python3 scripts/update_docs.py --check     # exit 1, naming the block, when a page is out of date

tests/docs/test_docs.py runs the --check form. Each generated block lies between a line
"<!-- BEGIN NAME ... -->" and a line "<!-- END NAME ... -->"; only what is between them changes.
"""
import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

sys.path.insert(0, os.path.join(ROOT, "bench"))
from analysis import answers  # noqa: E402
from run_bench import machine_name  # noqa: E402  (the CPU kind, as the benchmark block names it)


def block(text, name):
    """(start, end) of the body of block NAME in text: between its BEGIN line and its END line."""
    m = re.search(rf"^<!-- BEGIN {re.escape(name)}\b.*-->\n", text, re.M)
    e = re.search(rf"^<!-- END {re.escape(name)}\b.*-->$", text, re.M)
    if not m or not e or e.start() < m.end():
        raise SystemExit(f"update_docs: no '<!-- BEGIN {name} ... -->' ... '<!-- END {name} ... -->' block")
    return m.end(), e.start()


def body(text, name):
    a, b = block(text, name)
    return text[a:b]


def replace(text, name, new):
    a, b = block(text, name)
    return text[:a] + new + text[b:]


def params_reference(vizsweep):
    r = subprocess.run([vizsweep, "params", "--markdown"], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"update_docs: {vizsweep} params --markdown failed: {r.stderr}")
    return r.stdout.rstrip("\n") + "\n"


def cookbook():
    parts = []
    for name, title, sql in answers.ANSWERS:
        parts.append(f"**{name}**: {title}.\n\n```sql\n{sql}\n```\n")
    return "\n".join(parts)


def times_table(performance_text):
    """The tables of performance.md's "Quickstart and test run" section."""
    m = re.search(r"^## Quickstart and test run\n(.*?)^## ", performance_text, re.M | re.S)
    if not m:
        raise SystemExit("update_docs: docs/performance.md has no '## Quickstart and test run' section")
    tables = [line for line in m.group(1).splitlines() if line.startswith("|") or not line.strip()]
    text = "\n".join(tables).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", text) + "\n"


def quickstart_answers(results, only=None):
    args = [sys.executable, "-m", "analysis", "answers", results, "--markdown"]
    for n in only or []:
        args += ["--only", n]
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"update_docs: {' '.join(args)} failed: {r.stderr}")
    return r.stdout.rstrip("\n") + "\n"


def generated(vizsweep):
    """{path: {block: body}} of the blocks that follow from the code alone."""
    with open(os.path.join(ROOT, "docs", "performance.md")) as f:
        perf = f.read()
    return {
        "docs/sweep-files.md": {"vizsweep params --markdown": params_reference(vizsweep)},
        "docs/results-layout.md": {"cookbook": cookbook()},
        "README.md": {"times": times_table(perf)},
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vizsweep", default=os.path.join(ROOT, "build", "runner", "vizsweep"))
    p.add_argument("--quickstart", metavar="DIR", help="a finished quickstart's results directory")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 when a block is out of date")
    a = p.parse_args()
    want = generated(a.vizsweep)
    if a.quickstart:
        if a.check:
            p.error("--check compares what follows from the code alone; it takes no --quickstart")
        note = f"Machine: {machine_name()}; `python3 -m analysis answers` on the quickstart's results.\n\n"
        want.setdefault("docs/quickstart.md", {})["answers"] = note + quickstart_answers(a.quickstart)
        want["README.md"]["sample"] = note + quickstart_answers(a.quickstart, ["best_settings", "class_images"])
    stale = []
    for rel, blocks in want.items():
        path = os.path.join(ROOT, rel)
        with open(path) as f:
            text = f.read()
        new = text
        for name, content in blocks.items():
            if body(new, name) != content:
                stale.append(f"{rel}: block '{name}'")
                new = replace(new, name, content)
        if new != text and not a.check:
            with open(path, "w") as f:
                f.write(new)
    if a.check:
        if stale:
            print("update_docs: out of date (run /usr/bin/python3 scripts/update_docs.py):\n  " + "\n  ".join(stale))
            return 1
        print("update_docs: every generated block is current")
        return 0
    print("update_docs: " + ("wrote " + ", ".join(stale) if stale else "nothing to change"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
