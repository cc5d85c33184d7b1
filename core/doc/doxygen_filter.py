#!/usr/bin/python3
"""Doxygen's INPUT_FILTER for core/include/tp: reads a header the way it is written (plain C
comments, as in Redis and libuv) and prints it with the comments Doxygen reads:

  * the comment before the include guard documents the file (@file);
  * a comment on lines of its own documents the declaration after it (/** ... */);
  * a comment after code on the same line documents that member or value (/**< ... */);
  * a "/* Private ... */" line in a struct hides the members after it (@cond ... @endcond);
  * section rules (/* ---- name ---- */) and comments in function bodies stay as they are.

Lines are neither added nor removed, so Doxygen's warnings point at the real header."""
import re
import sys


def convert(lines):
    out = []
    depth = 0  # open braces of inline function bodies
    seen_guard = False
    in_comment = False  # inside a comment that started on an earlier line
    file_comment = False  # ... and it is the file's
    private = False  # in a struct's private members
    for line in lines:
        if in_comment:
            if "*/" in line:
                in_comment = False
                if file_comment:
                    line = line.replace("*/", "@file */", 1)
                    file_comment = False
            out.append(line)
            continue
        stripped = line.lstrip()
        code = line.split("/*")[0]
        if stripped.startswith("#ifndef TP_"):
            seen_guard = True
        plain = "/*" in line and not re.search(r"/\*[*!]|/\* ----", line)
        if private and stripped.startswith("}"):
            line = "/** @endcond */" + line
            private = False
        elif plain and stripped.startswith("/* Private") and "*/" in line:
            line = code + "/** @cond */"
            private = True
        elif plain and depth == 0:
            if not code.strip():
                # A comment of its own: the file's (before the guard) or the next declaration's.
                line = line.replace("/*", "/**", 1)
                if not seen_guard:
                    if "*/" in line:
                        line = line.replace("*/", "@file */", 1)
                    else:
                        file_comment = True
            else:
                line = code + "/**<" + line[len(code) + 2:]
            in_comment = "*/" not in line
        elif "/*" in line and "*/" not in line:
            in_comment = True
        if re.search(r"\)\s*\{\s*$", code):
            depth += 1
        elif depth and code.strip().startswith("}"):
            depth -= 1
        out.append(line)
    return out


def main(path):
    with open(path) as f:
        sys.stdout.write("\n".join(convert(f.read().split("\n"))))


if __name__ == "__main__":
    main(sys.argv[1])
