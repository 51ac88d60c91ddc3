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
reaches, or, for an item that module re-exports, to the file that defines
it. Declaring a child module (`mod x;`) is not an import, nor is
re-exporting its items (`pub use x::Item;`: the folder's front door); using
them (`use x::Item;`, `x::function()`) is. Code inside `#[cfg(test)]` is
left out: a test may reach up to whatever it tests with (so is a `tests.rs`
module file). Each crate (the server in src/, the app in app/src/) is
checked on its own; src/bin/ and main.rs are separate programs (their
sizes are checked, their imports are not).
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


def absolute(path, module, children):
    """`path` as written in `module` → its segments from the crate root, or
    None for another crate's path."""
    segments = [x.strip() for x in path.split("::") if x.strip()]
    if not segments:
        return None
    if segments[0] == "crate":
        resolved = ["crate"]
    elif segments[0] == "self":
        resolved = list(module)
    elif segments[0] == "super":
        resolved = list(module[:-1])
    elif segments[0] in children:
        resolved = [*module, segments[0]]
    else:
        return None
    for k, x in enumerate(segments[1:], 1):
        if x == "super" and all(y == "super" for y in segments[:k]):
            resolved = resolved[:-1]
        elif x != "self":
            resolved.append(x)
    return resolved


def resolve(resolved, mods, reexports, depth=0):
    """The file of the deepest module `resolved` reaches, following items
    that a module re-exports (`pub use x::Item`) to where they are defined."""
    for cut in range(len(resolved), 0, -1):
        key = tuple(resolved[:cut])
        if key in mods:
            rest = resolved[cut:]
            target = reexports.get(key, {}).get(rest[0]) if rest else None
            if target is not None and depth < 8:
                return resolve(target + rest[1:], mods, reexports, depth + 1)
            return mods[key]
    return None


def use_statements(path):
    """(is `pub use`, path) for every path of every `use` outside tests."""
    code = without_tests(strip(path.read_text()))
    found = []
    for m in re.finditer(r"\b(pub(?:\([^)]*\))?\s+)?use\s+([^;]*);", code):
        for p in use_paths(re.sub(r"\s+", " ", m.group(2))):
            found.append((m.group(1) is not None, p))
    return code, found


def children_of(module, mods):
    return {name for (*parent, name) in mods if tuple(parent) == module}


def reexports_of(mods):
    """{module: {item name: absolute path}} of every `pub use`."""
    table = {}
    for module, path in mods.items():
        _, uses = use_statements(path)
        children = children_of(module, mods)
        for public, p in uses:
            if not public or p.rstrip().endswith("*"):
                continue
            target = absolute(p, module, children)
            if target is not None:
                table.setdefault(module, {})[target[-1]] = target
    return table


def imports(path, module, mods, reexports):
    """The files that `path` (module `module`) imports, outside its tests."""
    code, uses = use_statements(path)
    children = children_of(module, mods)
    paths = []
    for public, p in uses:
        first = p.split("::")[0].strip()
        # `pub use child::Item` is the folder's front door, not a use of the
        # child; `use child::Item` is.
        if public and (first in children or first == "self"):
            continue
        paths.append(p)
    # Paths in code (`use` statements blanked: they were read above),
    # including ones relative to a child module: `child::function()`.
    code = re.sub(r"\buse\s+[^;]*;", lambda m: re.sub(r"[^\n]", " ", m.group(0)), code)
    paths += re.findall(r"(?<![\w:])((?:crate|super|self)(?:\s*::\s*\w+)+)", code)
    for p in re.findall(r"(?<![\w:])(\w+(?:\s*::\s*\w+)+)", code):
        if p.split("::")[0].strip() in children:
            paths.append(p)
    targets = set()
    for p in paths:
        resolved = absolute(p, module, children)
        if resolved is None:
            continue
        target = resolve(resolved, mods, reexports)
        if target is not None and target != path:
            targets.add(target)
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
        reexports = reexports_of(mods)
        graph = {f: imports(f, m, mods, reexports) for m, f in mods.items()}
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
        # Sizes: every source file, the programs in bin/ and main.rs included.
        sources = [f for f in sorted(src_dir.rglob("*.rs")) if f.name != "tests.rs"]
        for f in sources:
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
