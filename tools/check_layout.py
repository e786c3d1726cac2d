#!/usr/bin/env python3
"""Checks the layout rules of core/ and backends/ (docs/design.md, "One algorithm"):

- no header over MAX_FILE_LINES lines;
- no function body over MAX_FUNCTION_LINES lines (a brace-matching scan: a body is a block whose
  opening line ends a declaration, i.e. follows ')' and optional qualifiers; lambdas and blocks
  inside a function count towards it);
- no backend or instruction-set switch in core/ (KOKKOS_ENABLE_*, __AVX*, __CUDACC__,
  __CUDA_ARCH__): that knowledge lives in backends/.

Usage: tools/check_layout.py [repository root]. Prints each violation; exit status 1 if any.
"""

import pathlib
import re
import sys

MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 120
BACKEND_SWITCH = re.compile(r"KOKKOS_ENABLE_|__AVX|__CUDACC__|__CUDA_ARCH__")
# The end of a function declarator: ')' then qualifiers, a trailing return type or an
# initialiser list is not matched (constructors with one start their body on the next line).
DECLARATOR_END = re.compile(
    r"\)\s*(const)?\s*(noexcept)?\s*(override)?\s*(->\s*[\w:<>,\s*&]+)?\s*$")
CONTROL = re.compile(r"^\s*(if|for|while|switch|catch|else|do)\b|\bif constexpr\b|\[[^\]]*\]\s*\(")


def strip_comments_and_strings(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'R"\((.*?)\)"', lambda m: '""' + "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r'"(\\.|[^"\\\n])*"', '""', text)
    text = re.sub(r"'(\\.|[^'\\\n])'", "''", text)
    return text


def function_bodies(lines):
    """Yields (first line, last line) of each outermost function body (1-based)."""
    depth = 0
    body_start = None
    body_depth = None
    previous = ""
    for number, line in enumerate(lines, 1):
        for i, ch in enumerate(line):
            if ch == "{":
                head = (previous + " " + line[:i]).strip()
                if (body_start is None and DECLARATOR_END.search(head)
                        and not CONTROL.search(line[:i] if line[:i].strip() else previous)):
                    body_start, body_depth = number, depth
                depth += 1
            elif ch == "}":
                depth -= 1
                if body_start is not None and depth == body_depth:
                    yield body_start, number
                    body_start = None
        if line.strip():
            previous = line


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    problems = []
    for top in ("core", "backends"):
        for path in sorted((root / top).rglob("*.hpp")):
            text = path.read_text()
            lines = text.split("\n")
            rel = path.relative_to(root)
            if len(lines) > MAX_FILE_LINES:
                problems.append(f"{rel}: {len(lines)} lines (limit {MAX_FILE_LINES})")
            code = strip_comments_and_strings(text).split("\n")
            for first, last in function_bodies(code):
                if last - first + 1 > MAX_FUNCTION_LINES:
                    problems.append(f"{rel}:{first}: a function of {last - first + 1} lines "
                                    f"(limit {MAX_FUNCTION_LINES})")
            if top == "core":
                for number, line in enumerate(code, 1):
                    if BACKEND_SWITCH.search(line):
                        problems.append(f"{rel}:{number}: backend switch in core/: {line.strip()}")
    for p in problems:
        print(p)
    print(f"check_layout: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
