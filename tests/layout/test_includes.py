"""The layout of the project's C++. The include graph (kernels/, sweeps/, runner/, bench/, tests/): no
cycle between files, none between the parts of the project (kernels, sweeps, runner, bench
and each folder of tests, a part taking its sub-folders: kernels/optvis is the kernels' own;
across parts the includes go one way), and the sweep layer's shared types in a leaf header:
sweeps/types.h includes nothing of sweeps/, and the technique interface, the reader and
every technique include it rather than the parser's sweeps/sweep.h. And the size of the
kernels' functions: none over 120 lines, activation maximization's loop at most 150.

    /usr/bin/python3 tests/layout/test_includes.py [--graph]   (--graph prints the folder graph)"""
import os
import re
import sys
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TOP = ("kernels", "sweeps", "runner", "bench", "tests")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources():
    for top in TOP:
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith((".h", ".cpp", ".inc")):
                    yield os.path.relpath(os.path.join(d, f), ROOT)


def includes():
    """{file: [project files it includes]} (includes resolved against the root, as the build does)."""
    files = set(sources())
    graph = {}
    for f in files:
        with open(os.path.join(ROOT, f), encoding="utf-8") as src:
            text = src.read()
        graph[f] = [i for i in INCLUDE.findall(text) if i in files]
    return graph


def cycle(graph):
    """One cycle of the graph as a list of nodes, or None (iterative DFS, white/grey/black)."""
    state = {}
    for start in sorted(graph):
        if state.get(start):
            continue
        stack = [(start, iter(sorted(graph.get(start, ()))))]
        state[start], path = 1, [start]
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(sorted(graph.get(nxt, ())))))
    return None


def part(path):
    """kernels/optvis/param.h -> kernels; tests/kernels/x.cpp -> tests/kernels."""
    p = os.path.dirname(path).split(os.sep)
    return os.sep.join(p[:2] if p[0] == "tests" else p[:1])


def folders(graph):
    out = {}
    for f, incs in graph.items():
        a = part(f)
        out.setdefault(a, set())
        for i in incs:
            b = part(i)
            if b != a:
                out[a].add(b)
    return out


def functions(path):
    """[(signature's first line, length in lines)] of the functions defined at the top level of
    a file in the project's style: a signature starting in column 0, its body ending at the
    first "}" in column 0 (one-line definitions are not counted)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    out, i = [], 0
    skip = ("//", "#", "}", "namespace", "using", "struct", "class", "enum", "template", "extern", "static_assert")
    while i < len(lines):
        line = lines[i]
        if line and not line[0].isspace() and not line.startswith(skip) and "(" in line \
                and not line.rstrip().endswith((";", "}")):
            j = i
            while j < len(lines) and j - i < 6 and not lines[j].rstrip().endswith(("{", ";")):
                j += 1
            if j < len(lines) and lines[j].rstrip().endswith("{"):
                k = j + 1
                while k < len(lines) and lines[k] != "}":
                    k += 1
                out.append((line.strip(), k - i + 1))
                i = k + 1
                continue
        i += 1
    return out


class FunctionSize(unittest.TestCase):
    def test_no_function_in_kernels_is_over_120_lines(self):
        found = {}
        for d, _, files in os.walk(os.path.join(ROOT, "kernels")):
            for f in files:
                if f.endswith(".cpp"):
                    for sig, n in functions(os.path.join(d, f)):
                        found[os.path.relpath(os.path.join(d, f), ROOT) + ": " + sig] = n
        loop = [n for sig, n in found.items() if "ActMaxResult activation_maximization(" in sig]
        self.assertEqual(len(loop), 1)
        self.assertLessEqual(loop[0], 150)
        self.assertGreater(len(found), 100)  # the scan finds the kernels' functions
        long = {sig: n for sig, n in found.items() if n > 120}
        self.assertEqual(long, {})

    def test_the_scan_counts_a_function(self):
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".cpp", delete=False) as f:
            f.write("int f(int a,\n      int b) {\n  return a;\n}\nint g() { return 1; }\nvoid h() {\n}\n")
        try:
            self.assertEqual(functions(f.name), [("int f(int a,", 4), ("void h() {", 2)])
        finally:
            os.unlink(f.name)


class IncludeGraph(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.graph = includes()

    def test_there_are_sources(self):
        self.assertGreater(len(self.graph), 100)
        self.assertIn("kernels/model.h", self.graph["kernels/actmax.h"])

    def test_no_cycle_between_files(self):
        self.assertIsNone(cycle(self.graph))

    def test_no_cycle_between_parts(self):
        parts = folders(self.graph)
        self.assertEqual(parts["sweeps"], {"kernels"})
        c = cycle(parts)
        self.assertIsNone(c, "parts include each other: " + " -> ".join(c or []))

    def test_the_sweep_layers_shared_types_are_a_leaf(self):
        self.assertEqual([i for i in self.graph["sweeps/types.h"] if i.startswith("sweeps/")], [])
        users = ["sweeps/technique.h", "sweeps/reader.h"] + [f for f in self.graph if f.startswith("sweeps/techniques/")]
        for f in users:
            self.assertNotIn("sweeps/sweep.h", self.graph[f], f)
        self.assertIn("sweeps/types.h", self.graph["sweeps/technique.h"])

    def test_the_checker_finds_a_cycle(self):
        self.assertEqual(cycle({"a": ["b"], "b": ["c"], "c": ["a"]}), ["a", "b", "c", "a"])
        self.assertIsNone(cycle({"a": ["b"], "b": ["c"], "c": []}))


if __name__ == "__main__":
    if "--graph" in sys.argv:
        for a, bs in sorted(folders(includes()).items()):
            print(f"{a} -> {', '.join(sorted(bs))}")
        sys.exit(0)
    unittest.main()
