"""Fail early, with a message a person can act on, when a prerequisite is missing.

Runs with whatever `python3` the Makefile found, before any dependency exists, so it
uses the standard library only.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

MIN_PYTHON = (3, 11)
MIN_NODE = 20


def main() -> int:
    problems: list[str] = []
    if sys.version_info < MIN_PYTHON:
        problems.append(
            f"Python >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]} is required; "
            f"{sys.executable} is {sys.version.split()[0]}. Run `make PYTHON=python3.12 ...`."
        )
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        problems.append(f"Node.js >= {MIN_NODE} with npm is required (for the pinned CDK CLI).")
    else:
        version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
        major = int(version.strip().lstrip("v").split(".")[0] or 0)
        if major < MIN_NODE:
            problems.append(f"Node.js >= {MIN_NODE} is required; found {version.strip()}.")
    for problem in problems:
        print(f"prerequisite missing: {problem}", file=sys.stderr)  # noqa: T201
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
