"""fastmlp: fast two-layer neural networks on the CPU, with a NumPy reference.

>>> import fastmlp
>>> model = fastmlp.fit(X, y, hidden=128, epochs=200, batch_size=30, lr=1e-4, reg=1e-2)  # doctest: +SKIP
>>> model.score(X_test, y_test)                                                         # doctest: +SKIP

``fastmlp.fit`` trains with the compiled Cython step (``backend="cython"``) or the
pure-NumPy reference (``backend="numpy"``, :mod:`fastmlp.reference`); the two agree
to rounding. ``fastmlp.kernels`` exposes the compiled kernels one by one.
"""

from . import _sgd, _threads, data, kernels, reference
from ._fit import fit
from ._model import MLPModel, load
from ._version import __version__
from .estimator import MLPClassifier

# threadpoolctl sees fastmlp's thread team (and threadpool_limits limits it).
_threads.register_threadpoolctl()

__all__ = ["fit", "load", "MLPModel", "MLPClassifier", "data", "kernels", "reference", "__version__"]
