"""Print the oldest versions pyproject.toml declares, as pip constraints (``name==version``).

The build requirements and the run-time dependencies, each ``name>=version`` pinned
to its floor: ``pip install -c <(python tools/floors.py) ...`` builds and tests
fastmlp with exactly those versions, so the floors stay true (.ci/run does it).
"""
import pathlib
import re
import sys
import tomllib

FLOOR = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*$")


def floors(pyproject):
    """``{name: version}`` for each ``name>=version`` requirement of the build and the install."""
    config = tomllib.loads(pathlib.Path(pyproject).read_text())
    found = {}
    for requirement in config["build-system"]["requires"] + config["project"]["dependencies"]:
        match = FLOOR.match(requirement)
        if match is None:
            raise SystemExit(f"floors: cannot read a floor from {requirement!r} (write name>=version)")
        name, version = match.groups()
        if found.get(name.lower(), version) != version:
            raise SystemExit(f"floors: {name} has two floors, {found[name.lower()]} and {version}")
        found[name.lower()] = version
    return found


if __name__ == "__main__":
    root = pathlib.Path(__file__).resolve().parent.parent
    for name, version in floors(sys.argv[1] if len(sys.argv) > 1 else root / "pyproject.toml").items():
        print(f"{name}=={version}")
