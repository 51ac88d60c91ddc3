#!/usr/bin/env python3
"""Checks the shape of the code, as README's Layout promises it:

  1. no import circle among the source files of src/ and app/src/;
  2. no source file over 800 lines, not counting its `#[cfg(test)]` module;
  3. no function over 100 lines (tests aside);
  4. arrows one way in src/: settings (config) import nothing of the crate,
     adapters (store, llm, embed, index) only settings and each other as
     listed in LAYERS, never a service.

    scripts/check-structure.py [--graph]    (exit 1 on a violation)

An import is any path a file names that starts with `crate::`, `super::`,
`self::` or the name of one of its own child modules (in `use` trees,
expanded, and in expressions), resolved to the file of the deepest module it
reaches. Declaring a child module (`mod x;`) is not an import, nor is
re-exporting its items (`pub use x::Item;`: the folder's front door); using
them (`use x::Item;`, `x::function()`) is. Code inside `#[cfg(test)]` is
left out: a test may reach up to whatever it tests with (so is a `tests.rs`
module file). Each crate (the server in src/, the app in app/src/) is
checked on its own; src/bin/ holds separate programs.
`--graph` prints every file's imports.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_FILE_LINES = 800
MAX_FN_LINES = 100
# The server's layers, bottom up: what a file in each may import (besides
# its own folder). Services (chat/, documents/, ops/, the web edge) may
# import anything below them; adapters never import a service.
LAYERS = {
    "config.rs": set(),
    "telemetry.rs": set(),
    "store": {"config.rs"},
    "llm": {"config.rs"},
    "embed": {"config.rs", "llm"},
    "index": {"config.rs"},
}


def strip(source):
    """The source with comments, strings and char literals blanked out
    (newlines kept, so line numbers hold)."""
    out = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if source.startswith("//", i):
            j = source.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif source.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if source.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif source.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", source[i:j]))
            i = j
        elif (m := re.match(r'b?r(#*)"', source[i:i + 260])) and (
            i == 0 or not (source[i - 1].isalnum() or source[i - 1] == "_")
        ):
            end = '"' + m.group(1)
            j = source.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append('""' + re.sub(r"[^\n]", " ", source[i + 2:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and source[j] != '"':
                j += 2 if source[j] == "\\" else 1
            j += 1
            out.append('""' + re.sub(r"[^\n]", " ", source[i + 2:j]))
            i = j
        elif c == "'" and (m := re.match(r"'(\\.[^']*|[^\\'])'", source[i:i + 12])):
            out.append("' '" + " " * (m.end() - 3))
            i += m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def block_end(code, open_at):
    """Index just past the `}` matching the `{` at open_at."""
    depth = 0
    for j in range(open_at, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(code)


def without_tests(code):
    """Blanks every item under `#[cfg(test)]` (newlines kept)."""
    for m in reversed(list(re.finditer(r"#\[cfg\(test\)\]", code))):
        brace = code.find("{", m.end())
        semi = code.find(";", m.end())
        if brace < 0 or (0 <= semi < brace):
            end = semi + 1
        else:
            end = block_end(code, brace)
        code = code[:m.start()] + re.sub(r"[^\n]", " ", code[m.start():end]) + code[end:]
    return code


def use_paths(tree, prefix=""):
    """Expands a `use` tree (`a::{b, c::{d, e}}`) into its paths."""
    tree = tree.strip()
    if not tree:
        return []
    brace = tree.find("{")
    if brace < 0:
        return [prefix + re.split(r"\s+as\s+", tree)[0].strip()]
    head = tree[:brace]
    inner = tree[brace + 1:tree.rfind("}")]
    parts, depth, start = [], 0, 0
    for j, ch in enumerate(inner):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[start:j])
            start = j + 1
    parts.append(inner[start:])
    paths = []
    for part in parts:
        paths += use_paths(part, prefix + head)
    return paths


def modules(src_dir, crate_root):
    """{module path: file} for every module file of a crate."""
    found = {}
    for path in sorted(src_dir.rglob("*.rs")):
        rel = path.relative_to(src_dir)
        if rel.parts[0] == "bin" or rel == Path("main.rs") or path.name == "tests.rs":
            continue
        if path == crate_root:
            found[("crate",)] = path
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "mod":
            parts.pop()
        found[("crate", *parts)] = path
    return found


def imports(path, module, mods):
    """The files that `path` (module `module`) imports, outside its tests."""
    code = without_tests(strip(path.read_text()))
    children = {name for (*parent, name) in mods if tuple(parent) == module}
    paths = []
    for m in re.finditer(r"\b(pub(?:\([^)]*\))?\s+)?use\s+([^;]*);", code):
        for p in use_paths(re.sub(r"\s+", " ", m.group(2))):
            first = p.split("::")[0].strip()
            if first in children or first == "self":
                # `pub use child::Item` is the folder's front door, not a
                # use of the child; `use child::Item` is.
                if m.group(1) is None:
                    paths.append(p if first == "self" else "self::" + p)
            else:
                paths.append(p)
    # Paths in code (`use` statements blanked: they were read above),
    # including ones relative to a child module: `child::function()`.
    code = re.sub(r"\buse\s+[^;]*;", lambda m: re.sub(r"[^\n]", " ", m.group(0)), code)
    paths += re.findall(r"(?<![\w:])((?:crate|super|self)(?:\s*::\s*\w+)+)", code)
    for p in re.findall(r"(?<![\w:])(\w+(?:\s*::\s*\w+)+)", code):
        if p.split("::")[0].strip() in children:
            paths.append("self::" + p)
    targets = set()
    is_dir_module = path.name in ("mod.rs", "lib.rs")
    for p in paths:
        segments = [s.strip() for s in p.split("::") if s.strip()]
        if not segments or segments[0] not in ("crate", "super", "self"):
            continue
        here = list(module)
        # In a file module (a.rs), `super` is the parent; in mod.rs too,
        # since `module` is already the directory's module.
        _ = is_dir_module
        resolved = []
        for k, s in enumerate(segments):
            if k == 0 and s == "crate":
                resolved = ["crate"]
            elif s == "self" and k == 0:
                resolved = here
            elif s == "super" and (k == 0 or all(x == "super" for x in segments[:k])):
                base = resolved if k else here
                resolved = base[:-1]
            else:
                resolved = resolved + [s]
        for cut in range(len(resolved), 0, -1):
            target = mods.get(tuple(resolved[:cut]))
            if target is not None:
                if target != path:
                    targets.add(target)
                break
    return targets


def cycles(graph):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def long_functions(path):
    code = without_tests(strip(path.read_text()))
    found = []
    for m in re.finditer(r"\bfn\s+(\w+)", code):
        # The body opens at the first `{` after the signature (a `;` first
        # means a declaration without one).
        j = m.end()
        depth = 0
        while j < len(code):
            ch = code[j]
            if ch in "(<[":
                depth += 1
            elif ch in ")>]":
                depth = max(0, depth - 1)
            elif ch == ";" and depth == 0:
                j = -1
                break
            elif ch == "{" and depth == 0:
                break
            j += 1
        if j < 0 or j >= len(code):
            continue
        end = block_end(code, j)
        first = code.count("\n", 0, m.start()) + 1
        last = code.count("\n", 0, end) + 1
        if last - first + 1 > MAX_FN_LINES:
            found.append((m.group(1), first, last - first + 1))
    return found


def main():
    show_graph = "--graph" in sys.argv
    problems = []
    for src_dir, crate_root in ((ROOT / "src", ROOT / "src/lib.rs"),
                                (ROOT / "app/src", ROOT / "app/src/lib.rs")):
        mods = modules(src_dir, crate_root)
        graph = {f: imports(f, m, mods) for m, f in mods.items()}
        rel = lambda f: str(f.relative_to(ROOT))
        if show_graph:
            for f in sorted(graph):
                print(rel(f), "->", ", ".join(sorted(rel(t) for t in graph[f])) or "-")
        if src_dir == ROOT / "src":
            for f, targets in graph.items():
                top = f.relative_to(src_dir).parts[0]
                if top not in LAYERS:
                    continue
                for t in targets:
                    to = t.relative_to(src_dir).parts[0]
                    if to != top and to not in LAYERS[top] and to != "lib.rs":
                        problems.append(f"arrow upwards: {rel(f)} imports {rel(t)}")
        for comp in cycles(graph):
            problems.append("import circle: " + " <-> ".join(rel(f) for f in comp))
        for f in sorted(set(mods.values())):
            lines = without_tests(strip(f.read_text())).rstrip().count("\n") + 1
            if lines > MAX_FILE_LINES:
                problems.append(f"{rel(f)}: {lines} lines outside tests (at most {MAX_FILE_LINES})")
            for name, line, length in long_functions(f):
                problems.append(f"{rel(f)}:{line}: fn {name} is {length} lines (at most {MAX_FN_LINES})")
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problems", file=sys.stderr)
        sys.exit(1)
    print("structure: no import circles, arrows one way, no file over 800 lines, no function over 100")


if __name__ == "__main__":
    main()
