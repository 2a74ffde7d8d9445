#!/usr/bin/env python3
"""Lists the `crate::` edges between the top-level modules of src/ and fails on a cycle.

    scripts/module-graph.py            # the edges, then OK or the cycles (exit 1)
    scripts/module-graph.py --quiet    # only the verdict

A top-level module is `src/<name>.rs` or the folder `src/<name>/`; `lib.rs` is the root and not
counted. An edge `a -> b` means some file of `a` names `crate::b` (a path or a grouped
`use crate::{b, ..}`), or an item the root re-exports from `b` (`crate::AuthConfig`). Doc comments and `//` comments are ignored; `#[cfg(test)]` code is not
(a test module that reaches back is still a cycle to a reader).
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def modules():
    mods = {}
    for entry in sorted(os.listdir(SRC)):
        path = os.path.join(SRC, entry)
        if entry == "lib.rs":
            continue
        if entry.endswith(".rs"):
            mods[entry[:-3]] = [path]
        elif os.path.isdir(path):
            files = []
            for root, _, names in os.walk(path):
                files += [os.path.join(root, n) for n in names if n.endswith(".rs")]
            mods[entry] = sorted(files)
    return mods


def strip_comments(text):
    # Line comments (doc comments included); block comments are rare here and kept simple.
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(re.sub(r"//.*", "", line) for line in text.splitlines())


def reexports(mods):
    """Items the root re-exports (`pub use module::{A, B}`), so `crate::A` counts as `module`."""
    text = strip_comments(open(os.path.join(SRC, "lib.rs"), encoding="utf-8").read())
    found = {}
    for m in re.finditer(r"pub use (\w+)::(\{[^}]*\}|\w+)", text, flags=re.S):
        module, items = m.group(1), m.group(2).strip("{}")
        if module not in mods:
            continue
        for item in items.split(","):
            name = item.strip().split(" as ")[-1].strip()
            if name:
                found[name] = module
    return found


def edges(mods):
    names = set(mods)
    alias = reexports(mods)
    out = {m: set() for m in mods}
    for mod, files in mods.items():
        for f in files:
            text = strip_comments(open(f, encoding="utf-8").read())
            for m in re.finditer(r"crate::(\w+)", text):
                out[mod].add(m.group(1))
            for m in re.finditer(r"crate::\{([^}]*)\}", text):
                for part in m.group(1).split(","):
                    head = part.strip().split("::")[0].strip()
                    if head:
                        out[mod].add(head)
        out[mod] = {alias.get(t, t) for t in out[mod]}
        out[mod] = {t for t in out[mod] if t in names and t != mod}
    return out


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, sccs = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
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
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sccs


def main():
    quiet = "--quiet" in sys.argv
    graph = edges(modules())
    if not quiet:
        for mod in sorted(graph):
            print(f"{mod} -> {', '.join(sorted(graph[mod])) or '(nothing)'}")
    found = cycles(graph)
    if found:
        for comp in found:
            inner = sorted(f"{a} -> {b}" for a in comp for b in graph[a] if b in comp)
            print(f"CYCLE between {', '.join(comp)}: {'; '.join(inner)}")
        sys.exit(1)
    print("module graph: no cycle between top-level modules")


if __name__ == "__main__":
    main()
