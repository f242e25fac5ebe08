#!/usr/bin/env python3
"""The structure rules of src/ (README, "Code layout"), checked:

- no file over 450 lines, not counting its `#[cfg(test)]` module;
- no function over 80 lines (signature to closing brace);
- no import circle between modules. A module's use of its own
  descendants is its tree, not an import; every other `use crate::…`,
  `use super::…` or `use self::…` is an edge.

Prints each breach and exits 1, or prints a one-line summary.
"""
import os
import re
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else "src"
MAX_FILE, MAX_FN = 450, 80


def module_of(path):
    rel = os.path.relpath(path, SRC)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def code_lines(text):
    """The file's lines up to its test module."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.strip() == "#[cfg(test)]" and i + 1 < len(lines) and lines[i + 1].lstrip().startswith("mod "):
            return lines[:i]
    return lines


def long_functions(lines):
    out = []
    fn = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")
    for i, line in enumerate(lines):
        m = fn.match(line)
        if not m:
            continue
        depth, started = 0, False
        for j in range(i, len(lines)):
            text = re.sub(r'"(\\.|[^"\\])*"', '""', lines[j].split("//")[0])
            if not started and ";" in text and "{" not in text:
                break
            depth += text.count("{") - text.count("}")
            started |= "{" in text
            if started and depth <= 0:
                if j - i + 1 > MAX_FN:
                    out.append((m.group(6), i + 1, j - i + 1))
                break
    return out


def imports(module, text, modules):
    """The modules `text` imports, resolved to the longest known module path."""
    found = set()
    for m in re.finditer(r"\b(crate|super|self)((?:::\w+)+)", text):
        head, parts = m.group(1), m.group(2).strip(":").split("::")
        if head == "crate":
            base = ()
        elif head == "self":
            base = module
        else:
            base = module[:-1]
            while parts and parts[0] == "super":
                base, parts = base[:-1], parts[1:]
        path = base + tuple(parts)
        while path and path not in modules:
            path = path[:-1]
        if path != module and path[: len(module)] != module:
            found.add(path)
    return found


def cycles(graph):
    seen, stack, out = set(), [], []

    def visit(node):
        if node in stack:
            out.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            visit(nxt)
        stack.pop()

    for node in sorted(graph):
        visit(node)
    return out


def main():
    files = [os.path.join(d, f) for d, _, fs in os.walk(SRC) for f in fs if f.endswith(".rs")]
    modules = {module_of(f): f for f in files}
    breaches, graph = [], {}
    for module, path in sorted(modules.items()):
        lines = code_lines(open(path, encoding="utf-8").read())
        if len(lines) > MAX_FILE:
            breaches.append(f"{path}: {len(lines)} lines outside its tests (at most {MAX_FILE}); split it by job")
        for name, line, length in long_functions(lines):
            breaches.append(f"{path}:{line}: fn {name} is {length} lines (at most {MAX_FN}); cut it into named steps")
        code = "\n".join(re.sub(r"//.*", "", line) for line in lines)
        graph[module] = imports(module, code, modules)
    for cycle in cycles(graph):
        breaches.append("import circle: " + " -> ".join("::".join(m) or "crate" for m in cycle))
    for b in breaches:
        print(b)
    if breaches:
        sys.exit(1)
    print(f"structure: {len(modules)} modules, none over {MAX_FILE} lines or with a function over {MAX_FN}, no import circle")


main()
