"""The docs against the code, so they cannot drift: every command line in README.md, CHANGELOG.md,
docs/ and slurm/README.md names a subcommand and flags that exist; every relative link (and its
anchor) and every repository path resolves; the generated blocks are what the code writes now;
the cookbook's queries run on a fresh index; the annotated sweep file uses real keys; versions,
the schema version and the models' accuracies agree with their sources; README.md stays short;
the export snippet of docs/models.md runs and `vizsweep plan` loads what it writes. The checker
also proves on made-up lines that it finds a removed flag, subcommand, file and anchor."""
import functools
import glob
import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, ROOT)
VIZSWEEP = os.environ.get("VIZSWEEP", os.path.join(ROOT, "build", "runner", "vizsweep"))


def schema():
    """The index's schema as vizsweep writes it (results_schema.sql, filled in)."""
    return subprocess.run([VIZSWEEP, "schema"], check=True, capture_output=True, text=True).stdout
PYTHON = "/usr/bin/python3"

from analysis import answers  # noqa: E402

DOCS = ["README.md", "CHANGELOG.md", "slurm/README.md"] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))

# Programs other than vizsweep and the analysis package whose flags the docs name: the file
# whose text must contain each flag.
SOURCES = {
    "vizsweep-bench-actmax": "bench/bench_actmax.cpp",
    "vizsweep-bench-exemplars": "bench/bench_exemplars.cpp",
    "vizsweep-bench-graph": "bench/bench_graph.cpp",
    "vizsweep-bench-shard-kill": "bench/bench_shard_kill.cpp",
    "vizsweep-train": "models/train.cpp",
    "vizsweep-demo": "kernels/demo",
}
PATH_RE = re.compile(r"^(?:\./)?((?:kernels|runner|sweeps|slurm|analysis|tests|bench|models|scripts|docs|\.ci)/[\w./-]*|"
                     r"[\w-]+\.(?:md|sql|txt)|CMakeLists\.txt)$")


def read(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return f.read()


def code_of(text):
    """(fenced shell lines joined at backslashes, inline code spans) of a Markdown text."""
    fenced, inline = [], []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^\s*```(\w*)", lines[i])
        if m:
            lang = m.group(1)
            i += 1
            block = []
            while i < len(lines) and not re.match(r"^\s*```", lines[i]):
                block.append(lines[i])
                i += 1
            if lang in ("sh", "bash"):
                joined = "\n".join(block).replace("\\\n", " ")
                fenced += [ln for ln in joined.splitlines()]
            i += 1
            continue
        i += 1
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    inline = re.findall(r"`([^`\n]+)`", prose)
    return fenced, inline


def commands(line):
    """The token lists of the commands on one line (comments dropped, split at ; && |)."""
    line = re.sub(r"(^|\s)#.*$", "", line).strip()
    out = []
    for part in re.split(r"\s*(?:;|&&|\|\||\|)\s*", line):
        try:
            toks = shlex.split(part)
        except ValueError:
            toks = part.split()
        toks = [t.strip("[]") for t in toks]
        toks = [t for t in toks if t]
        if toks:
            out.append(toks)
    return out


@functools.lru_cache(maxsize=None)
def help_of(*cmd):
    r = subprocess.run(list(cmd), cwd=ROOT, capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


@functools.lru_cache(maxsize=None)
def vizsweep_commands():
    _, text = help_of(VIZSWEEP, "--help")
    return set(re.findall(r"^  (\w+) ", text, re.M))


@functools.lru_cache(maxsize=None)
def analysis_commands():
    _, text = help_of(PYTHON, "-m", "analysis", "--help")
    m = re.search(r"\{([\w,]+)\}", text)
    return set(m.group(1).split(",")) if m else set()


def has_flag(text, flag):
    """flag appears in text as a whole option name (--pareto is not in --pareto-front)."""
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


def flags(tokens):
    return [t.split("=")[0] for t in tokens if re.match(r"^--[a-z][\w-]*", t) or t == "-o"]


def check_command(toks):
    """Problems of one command, as messages; [] when every part of it exists."""
    problems = []
    names = [os.path.basename(t) for t in toks]
    first = toks[0][2:] if toks[0].startswith("./") else toks[0]
    if re.match(r"^(scripts|bench|models|tests|slurm)/", first):
        names = []  # a script: its own arguments (e.g. --target vizsweep) are checked below
    if "vizsweep" in names:
        i = names.index("vizsweep")
        rest = toks[i + 1:]
        if not rest or rest[0] in ("--version", "--help", "-h", "COMMAND"):
            return []
        sub = rest[0]
        if sub not in vizsweep_commands():
            return [f"vizsweep has no command '{sub}'"]
        rc, text = help_of(VIZSWEEP, sub, "--help")
        for f in flags(rest[1:]):
            if not has_flag(text, f) and f != "--help":
                problems.append(f"vizsweep {sub} has no option {f}")
        return problems
    for i in range(len(toks) - 1):
        if toks[i] == "-m" and toks[i + 1] == "analysis":
            rest = toks[i + 2:]
            if not rest or rest[0] in ("SUBCOMMAND", "--help"):
                return []
            sub = rest[0]
            if sub not in analysis_commands():
                return [f"python3 -m analysis has no subcommand '{sub}'"]
            _, text = help_of(PYTHON, "-m", "analysis", sub, "--help")
            for f in flags(rest[1:]):
                if not has_flag(text, f):
                    problems.append(f"python3 -m analysis {sub} has no option {f}")
            return problems
    for i, t in enumerate(toks):
        rel = t[2:] if t.startswith("./") else t
        source = None
        if re.match(r"^(scripts|bench|models|tests|slurm)/[\w./-]+\.(sh|py)$", rel):
            if not os.path.isfile(os.path.join(ROOT, rel)):
                return [f"no such script {rel}"]
            source = rel
        elif os.path.basename(t) in SOURCES:
            source = SOURCES[os.path.basename(t)]
        if source:
            path = os.path.join(ROOT, source)
            text = "".join(read(os.path.relpath(p, ROOT)) for p in sorted(glob.glob(os.path.join(path, "*")))) \
                if os.path.isdir(path) else read(source)
            for f in flags(toks[i + 1:]):
                if f != "-o" and not has_flag(text, f):
                    problems.append(f"{t} has no option {f} (not in {source})")
            return problems
    return []


def slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(rel):
    return {slug(m) for m in re.findall(r"^#{1,6} (.+)$", re.sub(r"```.*?```", "", read(rel), flags=re.S), re.M)}


def link_problems(rel, text):
    problems = []
    base = os.path.dirname(rel)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        dest = os.path.normpath(os.path.join(base, path)) if path else rel
        if not os.path.exists(os.path.join(ROOT, dest)):
            problems.append(f"{rel}: link to {target}: no such file")
        elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
            problems.append(f"{rel}: link to {target}: {dest} has no heading '#{anchor}'")
    return problems


def path_problems(rel, inline):
    problems = []
    for span in inline:
        for tok in span.split():
            tok = tok.strip(",;:()")
            if "<" in tok or "*" in tok or "NAME" in tok or "$" in tok or tok.startswith("build"):
                continue
            m = PATH_RE.match(tok)
            if m and not os.path.exists(os.path.join(ROOT, m.group(1))):
                problems.append(f"{rel}: `{span}` names {m.group(1)}, which does not exist")
    return problems


class Docs(unittest.TestCase):
    def test_readme_is_a_short_guide(self):
        n = len(read("README.md").splitlines())
        self.assertLessEqual(n, 300, f"README.md has {n} lines")
        self.assertNotIn("this release", read("README.md").lower())

    def test_every_command_line_names_what_exists(self):
        problems, checked = [], 0
        for rel in DOCS:
            fenced, inline = code_of(read(rel))
            for line in fenced + inline:
                for toks in commands(line):
                    p = check_command(toks)
                    checked += 1
                    problems += [f"{rel}: `{' '.join(toks)}`: {x}" for x in p]
        self.assertGreater(checked, 100)
        self.assertEqual(problems, [], "\n".join(problems))

    def test_the_checker_finds_what_is_missing(self):
        # A flag removed from a program (or never there), a command, a script, a link, a path.
        self.assertFalse(has_flag("--pareto-front  only the front", "--pareto"))
        self.assertIn("vizsweep run has no option --no-such-flag",
                      check_command(shlex.split("vizsweep run SWEEP --out DIR --no-such-flag")))
        self.assertEqual(check_command(shlex.split("./build/runner/vizsweep run SWEEP --out DIR --journal delete")), [])
        self.assertIn("vizsweep has no command 'launch'", check_command(shlex.split("vizsweep launch SWEEP")))
        self.assertIn("python3 -m analysis grid has no option --colour",
                      check_command(shlex.split("/usr/bin/python3 -m analysis grid R --colour red")))
        self.assertIn("no such script scripts/deploy.sh", check_command(shlex.split("./scripts/deploy.sh")))
        self.assertTrue(check_command(shlex.split("build/bench/vizsweep-bench-actmax --warp-speed 1")))
        self.assertEqual(check_command(shlex.split("./scripts/test.sh --quick")), [])
        self.assertTrue(link_problems("README.md", "see [x](docs/nowhere.md)"))
        self.assertTrue(link_problems("README.md", "see [x](docs/models.md#no-such-heading)"))
        self.assertEqual(link_problems("README.md", "see [x](docs/models.md#your-own-model)"), [])
        self.assertTrue(path_problems("README.md", ["kernels/warp_drive.cpp"]))

    def test_links_and_paths_resolve(self):
        problems = []
        for rel in DOCS:
            text = read(rel)
            problems += link_problems(rel, text)
            problems += path_problems(rel, code_of(text)[1])
        self.assertEqual(problems, [], "\n".join(problems))

    def test_generated_blocks_are_what_the_code_writes(self):
        r = subprocess.run([PYTHON, os.path.join(ROOT, "scripts", "update_docs.py"), "--check", "--vizsweep", VIZSWEEP],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # The quickstart's answers were written from a real run (they name its machine).
        for rel, name in (("docs/quickstart.md", "answers"), ("README.md", "sample")):
            body = re.search(rf"<!-- BEGIN {name}\b.*?-->\n(.*?)<!-- END {name}", read(rel), re.S).group(1)
            self.assertIn("Machine: ", body, f"{rel}: block {name} is empty: run scripts/update_docs.py --quickstart")
            self.assertIn("| layer | best_score |", body + read("docs/quickstart.md"))

    def test_cookbook_queries_run_on_a_fresh_index(self):
        db = sqlite3.connect(":memory:")
        db.executescript(schema())
        for name, _, sql in answers.ANSWERS:
            db.execute(sql).fetchall()  # raises on a column or table the schema does not have
        text = read("docs/results-layout.md")
        for name, _, sql in answers.ANSWERS:
            self.assertIn(sql, text, f"cookbook lacks {name}")

    def test_sql_in_the_docs_runs_on_a_fresh_index(self):
        db = sqlite3.connect(":memory:")
        db.executescript(schema())
        found = 0
        for rel in DOCS:
            text = read(rel)
            for sql in re.findall(r'sqlite3 [^"\n]*"\s*(SELECT .*?);?"', text, re.S) + \
                    re.findall(r"```sql\n(.*?)```", text, re.S):
                found += 1
                try:
                    db.execute(sql).fetchall()
                except sqlite3.Error as e:
                    self.fail(f"{rel}: {e}:\n{sql}")
        self.assertGreater(found, len(answers.ANSWERS))

    def test_annotated_sweep_file_uses_real_keys(self):
        _, ref = help_of(VIZSWEEP, "params", "--markdown")
        keys = {}
        for section, names in re.findall(r"^\| (\(top level\)|`\w+`) \|(.*)\|$", ref, re.M):
            keys[section.strip("`")] = set(re.findall(r"`(\w+)`", names))
        self.assertIn("actmax", keys)
        text = read("docs/sweep-files.md")
        yaml = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
        section, seen = None, 0
        for line in yaml.splitlines():
            m = re.match(r"^( *)(\w+):", line)
            if not m:
                continue
            indent, key = len(m.group(1)), m.group(2)
            if indent == 0:
                self.assertIn(key, keys["(top level)"], f"top-level key {key}")
                section = key
                seen += 1
            elif indent == 2 and section in keys:
                self.assertIn(key, keys[section], f"{section}.{key}")
                seen += 1
        self.assertGreater(seen, 30)
        # every key there is documented in the annotated file
        for section, names in keys.items():
            for k in names:
                self.assertRegex(yaml, rf"(?m)^ *{k}:", f"{section}: key {k} missing from the annotated sweep file")

    def test_versions_agree(self):
        cmake = re.search(r"project\(vizsweep VERSION ([0-9.]+)", read("CMakeLists.txt")).group(1)
        changelog = re.search(r"^## ([0-9]+\.[0-9]+\.[0-9]+)", read("CHANGELOG.md"), re.M).group(1)
        _, out = help_of(VIZSWEEP, "--version")
        self.assertEqual(out.strip(), f"vizsweep {cmake}")
        self.assertEqual(changelog, cmake, "CHANGELOG.md's first entry is the version CMake builds")
        self.assertIn(f"Version {cmake}", read("README.md"))

    def test_the_schema_version_the_docs_state_is_the_schemas(self):
        schema = re.search(r"VALUES \('schema_version', '([0-9.]+)'\)", read("results_schema.sql")).group(1)
        migrations = sorted(f[:-4] for f in os.listdir(os.path.join(ROOT, "runner", "migrations")))
        self.assertEqual(max(migrations, key=lambda v: int(v.split(".")[1])), schema,
                         "the schema's version is its last migration's (runner/migrations/)")
        layout = read("docs/results-layout.md")
        self.assertIn(f"`meta.schema_version` is {schema}.", layout)
        self.assertRegex(layout, rf"(?m)^\| {re.escape(schema)} \|", "the versions table ends at the current one")
        for rel in DOCS:
            for v in re.findall(r"schema (?:version )?(1\.[0-9]+)", read(rel)):
                self.assertLessEqual(float(v), float(schema), f"{rel}: schema {v}")

    def test_the_models_accuracies_are_their_records(self):
        for model, page_pct in (("fashion_vgg11", "92.2%"), ("fashion_judge", "91.96%"), ("fashion_resnet", "92.68%")):
            record = json.loads(read(f"models/{model}.json"))
            acc = record.get("test_accuracy") or record["training"]["test_accuracy"]
            digits = len(page_pct.split(".")[1]) - 1
            self.assertEqual(page_pct, f"{100 * acc:.{digits}f}%", model)
            self.assertIn(f"**{page_pct}", read("docs/models.md"))
        self.assertIn("**92.2%**", read("README.md"))

    def test_the_readmes_counts_are_the_sweep_files(self):
        # The README's counts of what the quickstart and the VGG16 example run, against what
        # `vizsweep plan` counts in those sweep files.
        words = {5: "five", 6: "six"}
        readme = " ".join(read("README.md").split())
        rc, plan = help_of(VIZSWEEP, "plan", os.path.join(ROOT, "sweeps", "examples", "quickstart.yaml"))
        self.assertEqual(rc, 0, plan)
        actmax = plan.split("\nactmax ")[1].split("total")[0]
        rows = re.findall(r"^\s+(\w+)\s+\d+\s+([\d,]+)\s+(\d+)\s", actmax, re.M)
        convs = [r for r in rows if r[0].startswith("conv")]
        settings = {int(r[2]) for r in rows}
        self.assertEqual(len(settings), 1)
        settings = settings.pop()
        class_units = int(dict((r[0], r[1]) for r in rows)["fc8"].replace(",", "")) // settings
        images = re.search(r"^exemplars .*?\n\s+\*\s+\d+\s+([\d,]+)", plan, re.M | re.S).group(1)
        self.assertIn(f"The quickstart maps {words[len(convs)]} conv layers and the {class_units} class units under "
                      f"{words[settings]} settings, scans the {images} test images", readme)
        rc, plan = help_of(VIZSWEEP, "plan", os.path.join(ROOT, "sweeps", "examples", "vgg16_all_units.yaml"))
        self.assertEqual(rc, 0, plan)
        units = re.search(r"^actmax: ([\d,]+) units x", plan, re.M).group(1)
        self.assertIn(f"All {units} units of VGG16", readme)

    def test_the_checklists_name_real_places(self):
        _, ref = help_of(VIZSWEEP, "params", "--markdown")
        techniques = [t for t in re.findall(r"^\| `(\w+)` \|", ref, re.M) if os.path.exists(
            os.path.join(ROOT, "runner", "techniques", f"{t}.cpp"))]
        self.assertEqual(set(techniques), {"actmax", "invert", "fgsm", "featuremaps", "exemplars"})
        design = read("docs/design.md")
        for t in techniques:
            for pattern in re.findall(r"`((?:sweeps|runner)/techniques/NAME\.(?:h|cpp))`", design):
                self.assertTrue(os.path.exists(os.path.join(ROOT, pattern.replace("NAME", t))), pattern)
            self.assertIn(f"'{t}'", schema())

    def test_the_parts_checklist_holds_for_every_transform_file(self):
        # docs/design.md: a transform is its own file in kernels/optvis/transforms/ and one
        # row of the actmax table; each such file's transform is a hyperparameter `vizsweep
        # params` lists and a column of the schema (the fuzzer's dictionary takes the words
        # from the same table: tests/fuzz/run_fuzzer.sh).
        design = read("docs/design.md")
        self.assertIn("kernels/optvis/transforms/NAME.cpp", design)
        _, ref = help_of(VIZSWEEP, "params", "--markdown")
        files = [f[:-4] for f in os.listdir(os.path.join(ROOT, "kernels", "optvis", "transforms")) if f.endswith(".cpp")]
        self.assertIn("brightness", files)
        for name in files:
            self.assertRegex(ref, rf"\| `{name}` \|", f"{name}: not a hyperparameter in vizsweep params")
            self.assertRegex(schema(), rf"\n  {name} REAL NOT NULL", f"{name}: not a column of actmax_settings")

    def test_the_export_snippet_runs_and_plan_loads_its_model(self):
        try:
            import torch  # noqa: F401
        except ImportError:
            self.fail("python3-torch is needed (scripts/setup.sh installs it)")
        snippet = re.search(r"```python\n(# export_mine\.py.*?)```", read("docs/models.md"), re.S).group(1)
        readme = read("README.md")
        sweep = re.search(r"```yaml\n(name: mine\n.*?)```", readme, re.S).group(1)
        with tempfile.TemporaryDirectory(prefix="vizsweep_docs_") as tmp:
            # weights as a user's training would leave them: the state dict of the snippet's class
            make = snippet.split("model = SmallVGG()")[0] + \
                "torch.manual_seed(0)\ntorch.save(SmallVGG().state_dict(), 'my_weights.pth')\n"
            for name, code in (("make_weights.py", make), ("export_mine.py", snippet)):
                with open(os.path.join(tmp, name), "w") as f:
                    f.write(code)  # a file: torch.jit.script reads the class's source
                r = subprocess.run([PYTHON, name], cwd=tmp, capture_output=True, text=True, timeout=300)
                self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(tmp, "mine.yaml"), "w") as f:
                f.write(sweep)
            r = subprocess.run([VIZSWEEP, "plan", "mine.yaml"], cwd=tmp, capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("small_vgg", r.stdout)
            self.assertRegex(r.stdout, r"actmax\s")


if __name__ == "__main__":
    unittest.main(verbosity=2)
