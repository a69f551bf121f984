"""Sweeps on a Dask cluster: GridSearchCV / RandomizedSearchCV over MLPClassifier through
joblib's Dask backend, on a real LocalCluster of two single-threaded worker processes."""

import importlib
import logging
import os
import time

import joblib
import numpy as np
import pytest
from scipy.stats import loguniform
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, cross_validate

from fastmlp import MLPClassifier
from fastmlp.data import load_digits_split

distributed = pytest.importorskip("distributed")

# Starting the cluster's processes takes a few seconds: `pytest -m "not slow"` leaves these out.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client():
    """A LocalCluster on the loopback interface only: 2 worker processes, 1 thread each."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as client:
        for module in ("fastmlp._sgd", "fastmlp.estimator", "sklearn.model_selection"):
            client.run(importlib.import_module, module)  # imported before any sweep is timed
        yield client


@pytest.fixture(scope="module")
def digits():
    X, y, _, _ = load_digits_split(seed=0)
    return X[:600], y[:600]


def make_search(kind, n_threads):
    """A tiny sweep (4 candidates x 3 folds, 4 epochs each) over the learning rate and width."""
    clf = MLPClassifier(hidden=16, epochs=4, batch_size=30, random_state=0, n_threads=n_threads)
    if kind == "grid":
        return GridSearchCV(clf, {"lr": [1e-4, 1e-3], "hidden": [8, 16]}, cv=3, refit=False)
    return RandomizedSearchCV(clf, {"lr": loguniform(1e-4, 1e-2), "hidden": [8, 16]}, n_iter=4,
                              cv=3, refit=False, random_state=0)


@pytest.mark.parametrize("kind", ["grid", "random"])
def test_search_on_cluster_matches_local(client, digits, kind):
    X, y = digits
    # The workers run one fastmlp thread each (see the next test); the local run
    # uses one thread too, so both do bitwise the same arithmetic.
    start = time.perf_counter()
    local = make_search(kind, n_threads=1).fit(X, y)
    local_time = time.perf_counter() - start

    start = time.perf_counter()
    with distributed.get_task_stream(client) as tasks, joblib.parallel_config(backend="dask"):
        remote = make_search(kind, n_threads=None).fit(X, y)
    remote_time = time.perf_counter() - start
    print(f"{kind} search, 12 fits: local {local_time:.2f} s, LocalCluster(2 x 1 thread) {remote_time:.2f} s")

    workers = {task["worker"] for task in tasks.data}
    assert workers and workers <= set(client.scheduler_info()["workers"])  # the fits ran there
    assert remote.best_params_ == local.best_params_
    for key in ("params", "mean_test_score", "std_test_score", "split0_test_score",
                "split1_test_score", "split2_test_score", "rank_test_score"):
        np.testing.assert_array_equal(remote.cv_results_[key], local.cv_results_[key], err_msg=key)
    assert remote.best_score_ == local.best_score_ > 0.3


def test_worker_fits_use_the_workers_thread_limit(client, digits):
    X, y = digits
    # Dask's nanny sets OMP_NUM_THREADS in each worker's environment (1 by default,
    # matching threads_per_worker=1 here); fastmlp's default thread count must follow it.
    limits = client.run(os.environ.get, "OMP_NUM_THREADS")
    assert len(limits) == 2 and set(limits.values()) == {"1"}
    with joblib.parallel_config(backend="dask"):
        result = cross_validate(MLPClassifier(hidden=64, epochs=1, random_state=0), X, y, cv=2,
                                return_estimator=True)
    # hidden=64 could be split between up to 8 threads: 1 is the worker's limit at work
    assert [est.n_threads_ for est in result["estimator"]] == [1, 1]
    assert np.all(result["test_score"] > 0.1)
