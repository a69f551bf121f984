"""fastmlp.MLPClassifier: scikit-learn's own estimator checks and the ecosystem around it."""

import functools

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import estimator_checks_generator, parametrize_with_checks

import fastmlp
from fastmlp import MLPClassifier

# Small enough to be fast, trained enough to pass check_classifiers_train's accuracy bar, and a
# learning rate low enough that the checks' unscaled blobs do not kill the hidden layer:
# no check depends on the size of the network.
SMALL = dict(hidden=16, epochs=30, lr=3e-4)

# The checks whose outcome depends on the trained weights, i.e. on the backend. The
# others (bad input, parameters, tags, cloning) are settled before a backend is chosen
# and run once, above, with the compiled backend.
TRAINING_CHECKS = {
    "check_classifiers_train", "check_classifiers_classes", "check_fit_idempotent",
    "check_methods_subset_invariance", "check_methods_sample_order_invariance",
    "check_decision_proba_consistency", "check_estimators_pickle", "check_estimators_dtypes",
    "check_fit2d_1sample", "check_fit2d_1feature", "check_readonly_memmap_input",
    "check_pipeline_consistency", "check_dict_unchanged",
}


def _check_name(check):
    return (check.func if isinstance(check, functools.partial) else check).__name__


@parametrize_with_checks([MLPClassifier(**SMALL)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


NUMPY_CHECKS = [check for _, check in estimator_checks_generator(MLPClassifier(backend="numpy", **SMALL),
                                                                 legacy=True)
                if _check_name(check) in TRAINING_CHECKS]


def test_numpy_backend_covers_every_training_check():
    assert {_check_name(check) for check in NUMPY_CHECKS} == TRAINING_CHECKS


@pytest.mark.parametrize("check", NUMPY_CHECKS, ids=[_check_name(c) for c in NUMPY_CHECKS])
def test_sklearn_training_checks_numpy_backend(check):
    check(MLPClassifier(backend="numpy", **SMALL))


@pytest.fixture(scope="module")
def digits():
    from fastmlp.data import load_digits_split
    return load_digits_split(seed=0)


def test_same_model_as_fit_for_an_int_random_state(digits):
    X, y, _, _ = digits
    clf = MLPClassifier(hidden=32, epochs=3, random_state=7).fit(X, y)
    model = fastmlp.fit(X, y, hidden=32, epochs=3, seed=7)
    for ours, theirs in zip((clf.W1_, clf.b1_, clf.W2_, clf.b2_), (model.W1, model.b1, model.W2, model.b2)):
        assert_array_equal(ours, theirs)
    assert clf.history_["loss"] == model.history["loss"]


def test_string_labels_round_trip_through_classes(digits, tmp_path):
    X, y, X_test, y_test = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    clf = MLPClassifier(epochs=30, lr=1e-3, random_state=0).fit(X, names[y])
    assert_array_equal(clf.classes_, np.sort(names))
    pred = clf.predict(X_test)
    assert pred.dtype.kind == "U" and set(pred) <= set(names)
    assert clf.score(X_test, names[y_test]) > 0.9
    P = clf.predict_proba(X_test)
    assert_array_equal(clf.classes_[np.argmax(P, axis=1)], pred)

    path = tmp_path / "model.npz"
    clf.to_model().save(path)
    loaded = fastmlp.load(path)
    assert_array_equal(loaded.classes, clf.classes_)
    assert_array_equal(loaded.predict(X_test), pred)


def test_pipeline_and_grid_search_in_parallel(digits):
    X, y, X_test, y_test = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden=32, epochs=20, random_state=0, n_threads=1))
    search = GridSearchCV(pipe, {"mlpclassifier__lr": [1e-4, 1e-3]}, cv=2, n_jobs=2)
    search.fit(X, y)
    assert search.best_params_["mlpclassifier__lr"] in (1e-4, 1e-3)
    assert search.score(X_test, y_test) > 0.9
    # the search's winner is what a plain fit with those parameters gives
    best = clone(pipe).set_params(**search.best_params_).fit(X, y)
    assert_array_equal(best.predict(X_test), search.predict(X_test))


def test_partial_fit_is_one_epoch_per_call(digits):
    X, y, _, _ = digits
    clf = MLPClassifier(hidden=16, random_state=3)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X, y)
    for calls in range(1, 4):
        clf.partial_fit(X, y, classes=np.arange(10))
        assert len(clf.history_["loss"]) == calls
    # three partial_fit calls walk the same path as fit(epochs=3): one RNG stream
    full = MLPClassifier(hidden=16, epochs=3, random_state=3).fit(X, y)
    assert_array_equal(clf.W1_, full.W1_)
    assert clf.history_["loss"] == full.history_["loss"]
    with pytest.raises(ValueError, match="not seen"):
        clf.partial_fit(X[:5], np.full(5, 11))
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :10], y)


def test_partial_fit_accepts_a_subset_of_classes_per_call(digits):
    X, y, _, _ = digits
    clf = MLPClassifier(hidden=16, random_state=0)
    clf.partial_fit(X[y < 5], y[y < 5], classes=np.arange(10))
    clf.partial_fit(X[y >= 5], y[y >= 5])
    assert clf.predict_proba(X[:3]).shape == (3, 10)


def test_warm_start_continues_from_the_weights(digits):
    X, y, _, _ = digits
    clf = MLPClassifier(hidden=16, epochs=2, random_state=0, warm_start=True).fit(X, y)
    first = tuple(w.copy() for w in (clf.W1_, clf.b1_, clf.W2_, clf.b2_))
    clf.fit(X, y)
    assert len(clf.history_["loss"]) == 4
    # the second fit is fit(init=the first fit's weights), shuffled by a fresh random_state stream
    expected = fastmlp.fit(X, y, hidden=16, epochs=2, seed=0, init=first)
    for ours, theirs in zip((clf.W1_, clf.b1_, clf.W2_, clf.b2_), (expected.W1, expected.b1, expected.W2, expected.b2)):
        assert_array_equal(ours, theirs)
    with pytest.raises(ValueError, match="classes"):
        clf.fit(X[y < 9], np.where(y[y < 9] == 0, 42, y[y < 9]))

    cold = MLPClassifier(hidden=16, epochs=2, random_state=0).fit(X, y)
    cold.fit(X, y)
    assert len(cold.history_["loss"]) == 2
    assert_array_equal(cold.W1_, first[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_read_only_and_memmapped_input(dtype, tmp_path, digits):
    X, y, X_test, _ = digits
    X = X.astype(dtype)
    path = tmp_path / "X.dat"
    mm = np.memmap(path, dtype=dtype, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    ro = np.memmap(path, dtype=dtype, mode="r", shape=X.shape)
    a = MLPClassifier(hidden=16, epochs=2, random_state=0).fit(ro, y)
    b = MLPClassifier(hidden=16, epochs=2, random_state=0).fit(X.copy(), y)
    assert a.W1_.dtype == dtype
    assert_array_equal(a.W1_, b.W1_)


def test_float32_input_trains_in_float32(digits):
    X, y, _, _ = digits
    clf = MLPClassifier(hidden=16, epochs=1, random_state=0).fit(X.astype(np.float32), y)
    assert clf.W1_.dtype == np.float32
    clf64 = MLPClassifier(hidden=16, epochs=1, random_state=0, dtype="float64").fit(X.astype(np.float32), y)
    assert clf64.W1_.dtype == np.float64


@pytest.mark.parametrize("method", ["fit", "partial_fit", "predict", "predict_proba", "score"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "+inf", "-inf"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_non_finite_X_is_refused_by_every_method_with_the_fix(digits, method, value, sparse):
    # scikit-learn's validate_data leaves finiteness to fastmlp's own check: every
    # method must still refuse NaN and infinity, name X and say what to do, and leave
    # both the caller's X and a fitted model as they were.
    from scipy.sparse import csr_matrix
    X, y, _, _ = digits
    clf = MLPClassifier(hidden=16, epochs=1, random_state=0).fit(X, y)
    weights = [w.copy() for w in (clf.W1_, clf.b1_, clf.W2_, clf.b2_)]
    Xbad = X.copy()
    Xbad[3, 5] = value
    Xbad = csr_matrix(Xbad) if sparse else Xbad
    snap = Xbad.copy()
    args = (Xbad, y) if method in ("fit", "partial_fit", "score") else (Xbad,)
    with pytest.raises(ValueError, match=r"\bX\b contains NaN or infinity; remove or impute"):
        getattr(clf, method)(*args)
    if sparse:
        assert np.array_equal(Xbad.toarray(), snap.toarray(), equal_nan=True)
    else:
        assert np.array_equal(Xbad, snap, equal_nan=True)
    for before, after in zip(weights, (clf.W1_, clf.b1_, clf.W2_, clf.b2_)):
        assert_array_equal(before, after)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_X_beyond_float32_names_the_range_and_the_fix(digits):
    # X is finite, but a value overflows float32, the dtype asked for: the message must
    # name that cause and the fix, not only NaN.
    X, y, _, _ = digits
    Xbig = X.copy()
    Xbig[0, 0] = 1e39
    with pytest.raises(ValueError, match=r"\bX\b holds values too large for float32.*dtype=float64 or rescale X"):
        MLPClassifier(hidden=16, epochs=1, dtype="float32").fit(Xbig, y)
    clf = MLPClassifier(hidden=16, epochs=1, dtype="float64").fit(Xbig / 1e38, y)
    assert clf.W1_.dtype == np.float64


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_predictions_are_those_of_the_model_it_exports(digits, sparse):
    # The estimator predicts from its weights directly; its model (to_model) must give
    # the same outputs to the bit, labels mapped through classes_.
    from scipy.sparse import csr_matrix
    X, y, X_test, y_test = digits
    labels = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    clf = MLPClassifier(hidden=16, epochs=2, random_state=0).fit(X, labels[y])
    model = clf.to_model()
    Xq = csr_matrix(X_test) if sparse else X_test
    assert_array_equal(clf.predict_proba(Xq), model.predict_proba(Xq))
    assert_array_equal(clf.predict(Xq), model.predict(Xq))
    assert clf.predict(Xq).dtype == labels.dtype
    assert clf.score(Xq, labels[y_test]) == model.score(Xq, labels[y_test])
    assert_array_equal(clf.predict(Xq[:1]), model.predict(Xq[:1]))


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_continued_training_leaves_the_previous_weight_arrays_as_they_were(digits, momentum):
    # partial_fit and warm starts hand the fitted arrays to fit as its init, without a
    # copy: fit must train in copies of its own, so arrays a caller kept stay as they were.
    X, y, _, _ = digits
    clf = MLPClassifier(hidden=16, epochs=1, random_state=0, momentum=momentum, warm_start=True)
    clf.partial_fit(X, y, classes=np.arange(10))
    for step in (lambda: clf.partial_fit(X, y), lambda: clf.fit(X, y)):
        kept = (clf.W1_, clf.b1_, clf.W2_, clf.b2_)
        snap = [w.copy() for w in kept]
        step()
        for before, was, now in zip(kept, snap, (clf.W1_, clf.b1_, clf.W2_, clf.b2_)):
            assert_array_equal(before, was)
            assert not np.shares_memory(before, now)
        assert not np.array_equal(clf.W1_, snap[0])
