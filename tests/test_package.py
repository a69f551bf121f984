"""The package as a user meets it: what ``import fastmlp`` loads, and a source tree without builds."""

import os
import shutil
import subprocess
import sys

import pytest

import fastmlp

PACKAGE_DIR = os.path.dirname(os.path.abspath(fastmlp.__file__))


def run_python(code, cwd, *args):
    return subprocess.run([sys.executable, *args, "-c", code] if code else [sys.executable, *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def run_without_site(cwd, *args):
    """Python in ``cwd`` without site-packages: an editable install's import hook (which
    would find the real extensions) stays out, and the check runs before NumPy is needed."""
    return run_python(None, cwd, "-S", *args)


def test_import_loads_neither_sklearn_nor_matplotlib_nor_tqdm(tmp_path):
    # (that the lazy names then load is test_public_names_resolve_and_unknown_names_raise's part)
    code = ("import sys, fastmlp\n"
            "heavy = ('sklearn', 'matplotlib', 'tqdm', 'scipy', 'fastmlp.kernels', 'fastmlp._sgd')\n"
            "print(sorted(m for m in heavy if m in sys.modules), 'numpy' in sys.modules)\n")
    proc = run_python(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[] True"]


def test_public_names_resolve_and_unknown_names_raise():
    for name in fastmlp.__all__:
        assert getattr(fastmlp, name) is not None, name
    assert set(fastmlp.__all__) <= set(dir(fastmlp))
    from fastmlp import MLPClassifier, kernels  # the lazy names work with from-imports too
    assert MLPClassifier is fastmlp.MLPClassifier and kernels is fastmlp.kernels
    with pytest.raises(AttributeError, match="no attribute 'MLPClasifier'"):
        fastmlp.MLPClasifier


def _copy_sources(dest, source_tree):
    """The package's Python files (no compiled extensions) in ``dest/fastmlp``."""
    shutil.copytree(PACKAGE_DIR, dest / "fastmlp",
                    ignore=lambda d, names: [n for n in names if not n.endswith(".py")])
    if source_tree:
        (dest / "setup.py").write_text("# the source tree's setup.py\n")
        (dest / "src_c").mkdir()


@pytest.mark.parametrize("entry", [("-c", "import fastmlp"), ("-m", "fastmlp", "--help")])
def test_source_tree_without_extensions_says_what_to_do(tmp_path, entry):
    _copy_sources(tmp_path, source_tree=True)
    proc = run_without_site(tmp_path, *entry)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: fastmlp is imported from its source tree")
    assert "fastmlp.kernels, fastmlp._sgd" in last
    assert "another directory" in last and "`pip install -e .`" in last
    assert "circular import" not in proc.stderr


def test_installed_package_without_extensions_says_reinstall(tmp_path):
    _copy_sources(tmp_path, source_tree=False)
    proc = run_without_site(tmp_path, "-c", "import fastmlp")
    assert proc.returncode != 0
    assert "fastmlp was not built correctly" in proc.stderr and "pip install --force-reinstall" in proc.stderr
