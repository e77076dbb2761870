"""Print the hash of pyproject.toml's dependency tables (what requirements/dev.txt was made from).

Only `project.dependencies` and `project.optional-dependencies` count, so editing tool settings in
pyproject.toml does not make the lock stale; changing any dependency range does.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from pathlib import Path


def deps_hash(pyproject: Path) -> str:
    project = tomllib.loads(pyproject.read_text())["project"]
    tables = {"dependencies": project.get("dependencies", []), "optional": project.get("optional-dependencies", {})}
    return hashlib.sha256(json.dumps(tables, sort_keys=True).encode()).hexdigest()


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    print(deps_hash(root / "pyproject.toml"))
