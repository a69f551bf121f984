"""fastmlp: fast two-layer neural networks on the CPU, with a NumPy reference.

>>> import fastmlp
>>> model = fastmlp.fit(X, y, hidden=128, epochs=200, batch_size=30, lr=1e-4, reg=1e-2)  # doctest: +SKIP
>>> model.score(X_test, y_test)                                                         # doctest: +SKIP

``fastmlp.fit`` trains with the compiled Cython step (``backend="cython"``) or the
pure-NumPy reference (``backend="numpy"``, :mod:`fastmlp.reference`); the two agree
to rounding. ``fastmlp.kernels`` exposes the compiled kernels one by one.

``import fastmlp`` loads NumPy and the training and model code only. What needs
more is loaded on first use: ``fastmlp.MLPClassifier`` (scikit-learn),
``fastmlp.kernels`` (the compiled kernels and SciPy's BLAS), the plots (matplotlib)
and the progress bar (tqdm).
"""

import importlib
import importlib.util
import os

from ._version import __version__

_EXTENSIONS = ("kernels", "_sgd")


def _not_built_message(missing):
    """What happened and the fixes, when the compiled extensions are not beside this file."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    names = ", ".join(f"fastmlp.{name}" for name in missing)
    if os.path.exists(os.path.join(root, "setup.py")) and os.path.isdir(os.path.join(root, "src_c")):
        return (f"fastmlp is imported from its source tree ({here}), where its compiled extensions "
                f"({names}) have not been built, so it hides the fastmlp you installed. Either run "
                f"Python from another directory than {root}, or build the extensions in place with "
                f"`pip install -e .` in {root} (for development).")
    return (f"fastmlp's compiled extensions ({names}) are missing from {here}: fastmlp was not built "
            f"correctly. Reinstall it with `pip install --force-reinstall fastmlp`, with a wheel made "
            f"for this Python version, operating system and processor.")


_missing = [name for name in _EXTENSIONS if importlib.util.find_spec(f"{__name__}.{name}") is None]
if _missing:
    raise ImportError(_not_built_message(_missing))
del _missing

from . import _threads, data, reference  # noqa: E402  (after the check above, which names the real problem)
from ._fit import fit  # noqa: E402
from ._model import MLPModel, load  # noqa: E402

# Loaded on first access (PEP 562): name -> (module, attribute or None for the module itself).
_LAZY = {
    "MLPClassifier": (".estimator", "MLPClassifier"),
    "kernels": (".kernels", None),
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


# threadpoolctl sees fastmlp's thread team (and threadpool_limits limits it) once the
# compiled step is loaded: at the first fit, or with `import fastmlp._sgd`. It is not
# loaded here because it loads scipy.linalg, which would triple the import time.
_threads.register_threadpoolctl()

__all__ = ["fit", "load", "MLPModel", "MLPClassifier", "data", "kernels", "reference", "__version__"]
