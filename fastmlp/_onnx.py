"""ONNX export: the network as an ONNX graph, alone or inside a scikit-learn pipeline.

The graph is the forward pass of :mod:`fastmlp.reference`, node for node::

    A1 = MatMul(X, W1) + b1        R = Relu(A1)        logits = MatMul(R, W2) + b2
    probabilities = Softmax(logits, axis=1)
    label = Gather(classes, ArgMax(logits, axis=1))   (ArgMax alone without classes)

``ArgMax`` runs on the logits, as :meth:`fastmlp.MLPModel.predict` does, and keeps
the first of equal maxima, as ``numpy.argmax`` does, so labels agree exactly. The
ONNX libraries are an optional extra (``pip install "fastmlp[onnx]"``), imported
only here and only when exporting.
"""

import os

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._files import write_atomically
from ._version import __version__

#: The ONNX operator set and IR version of exported models: every operator used
#: here has had its present meaning since opset 13, and ONNX Runtime 1.14 and
#: later read opset 17 / IR 8.
OPSET = 17
IR_VERSION = 8
EXTRA = 'pip install "fastmlp[onnx]"'


def require(module):
    """Import ``module`` (onnx, onnxruntime or skl2onnx) or say which extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"ONNX export needs the package {module!r}, which is not installed "
                          f"({exc}); install fastmlp's ONNX extra: {EXTRA}") from exc


def export_dtype(dtype, default):
    """The float dtype of the exported graph: ``dtype``, or ``default`` when None."""
    if dtype is None:
        return np.dtype(default)
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32, float64 or None, got {dtype!r}") from None
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64 (ONNX Runtime runs the network in "
                         f"either), got {dtype}")
    return dtype


def label_values(classes):
    """The class labels as the array the ``label`` output is gathered from.

    Integers become int64, floats float64, booleans bool and strings ONNX strings
    (an object array of ``str``); other label types raise ``TypeError``.
    """
    classes = np.asarray(classes)
    kind = classes.dtype.kind
    if kind in "iu":
        if kind == "u" and classes.size and classes.max() > np.iinfo(np.int64).max:
            raise ValueError("classes do not fit in int64, ONNX's integer label type")
        return classes.astype(np.int64)
    if kind == "f":
        return classes.astype(np.float64)
    if kind == "b":
        return classes.astype(bool)
    if kind in "US":
        return classes.astype(str).astype(object)
    if kind == "O" and all(isinstance(c, str) for c in classes.tolist()):
        return classes.copy()
    raise TypeError(f"classes of dtype {classes.dtype} cannot be ONNX labels: use integer, float, "
                    f"boolean or string labels")


def network_graph(weights, dtype, classes, X, label, probabilities, name=str):
    """The network's nodes and constants, independent of how they are added to a graph.

    Parameters
    ----------
    weights : tuple (W1, b1, W2, b2)
    dtype : numpy dtype
        float32 or float64: the weights are cast to it (the input must be of it).
    classes : ndarray or None
        The label of each output (see :func:`label_values`); None: labels 0..C-1.
    X, label, probabilities : str
        Names of the graph's input and of its two outputs.
    name : callable
        Makes the name of an intermediate value or constant unique (``str`` when
        the names below are free; skl2onnx's ``scope.get_unique_variable_name``).

    Returns
    -------
    nodes : list of (op_type, inputs, outputs, attributes)
    constants : dict name -> ndarray
    """
    w1, bias1, w2, bias2 = (name(k) for k in ("W1", "b1", "W2", "b2"))
    constants = {key: np.ascontiguousarray(w, dtype=dtype)
                 for key, w in zip((w1, bias1, w2, bias2), weights)}
    a1, relu, logits = name("A1"), name("R"), name("logits")
    xw1, rw2 = name("X_W1"), name("R_W2")
    nodes = [
        ("MatMul", [X, w1], [xw1], {}),
        ("Add", [xw1, bias1], [a1], {}),                 # A1 = X @ W1 + b1
        ("Relu", [a1], [relu], {}),                      # R = max(A1, 0)
        ("MatMul", [relu, w2], [rw2], {}),
        ("Add", [rw2, bias2], [logits], {}),             # logits = R @ W2 + b2
        ("Softmax", [logits], [probabilities], {"axis": 1}),
    ]
    if classes is None:
        nodes.append(("ArgMax", [logits], [label], {"axis": 1, "keepdims": 0}))
    else:
        index, values = name("index"), name("classes")
        constants[values] = label_values(classes)
        nodes += [("ArgMax", [logits], [index], {"axis": 1, "keepdims": 0}),
                  ("Gather", [values, index], [label], {"axis": 0})]  # label = classes[index]
    return nodes, constants


def model_to_onnx(model, path=None, dtype=None):
    """:meth:`fastmlp.MLPModel.to_onnx` (see there)."""
    onnx = require("onnx")
    from onnx import helper, numpy_helper

    dtype = export_dtype(dtype, model.dtype)
    nodes, constants = network_graph((model.W1, model.b1, model.W2, model.b2), dtype, model.classes,
                                     "X", "label", "probabilities")
    float_type = helper.np_dtype_to_tensor_dtype(dtype)
    label_type = (onnx.TensorProto.INT64 if model.classes is None
                  else _tensor_type(onnx, constants["classes"]))
    graph = helper.make_graph(
        [helper.make_node(op, inputs, outputs, **attrs) for op, inputs, outputs, attrs in nodes],
        "fastmlp_mlp",
        [helper.make_tensor_value_info("X", float_type, ["N", model.n_features])],
        [helper.make_tensor_value_info("label", label_type, ["N"]),
         helper.make_tensor_value_info("probabilities", float_type, ["N", model.n_classes])],
        [numpy_helper.from_array(value, key) for key, value in constants.items()],
        doc_string="softmax(relu(X @ W1 + b1) @ W2 + b2); label = classes[argmax]")
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   ir_version=IR_VERSION, producer_name="fastmlp",
                                   producer_version=__version__)
    onnx.checker.check_model(onnx_model, full_check=True)
    if path is not None:
        data = onnx_model.SerializeToString()
        write_atomically(os.fspath(path), lambda f: f.write(data), binary=True)
    return onnx_model


def _tensor_type(onnx, values):
    """The ONNX element type of a constant from :func:`network_graph` (object arrays hold strings)."""
    if values.dtype.kind == "O":
        return onnx.TensorProto.STRING
    return onnx.helper.np_dtype_to_tensor_dtype(values.dtype)


# ------------------------------------------------------------------------ skl2onnx
# MLPClassifier.onnx_shape_calculator / onnx_converter hand these to skl2onnx, which
# looks for those methods on any estimator it converts: no registration call is needed.

def skl2onnx_shape_calculator(operator):
    """Output types of an MLPClassifier inside a skl2onnx graph: label (N,), probabilities (N, C)."""
    types = require("skl2onnx").common.data_types
    clf = operator.raw_operator
    check_is_fitted(clf)
    if not isinstance(operator.inputs[0].type, (types.FloatTensorType, types.DoubleTensorType)):
        raise TypeError(f"MLPClassifier converts for float or double input, got "
                        f"{operator.inputs[0].type}: give skl2onnx float32 or float64 data")
    n_rows = operator.inputs[0].get_first_dimension()
    label_type = {"i": types.Int64TensorType, "f": types.DoubleTensorType,
                  "b": types.BooleanTensorType, "O": types.StringTensorType}[label_values(clf.classes_).dtype.kind]
    float_type = (types.DoubleTensorType if isinstance(operator.inputs[0].type, types.DoubleTensorType)
                  else types.FloatTensorType)
    operator.outputs[0].type = label_type([n_rows])
    operator.outputs[1].type = float_type([n_rows, len(clf.classes_)])


def skl2onnx_converter(scope, operator, container):
    """Add an MLPClassifier's network to a skl2onnx graph, in the dtype of its input."""
    types = require("skl2onnx").common.data_types
    clf = operator.raw_operator
    dtype = np.float64 if isinstance(operator.inputs[0].type, types.DoubleTensorType) else np.float32
    nodes, constants = network_graph(
        (clf.W1_, clf.b1_, clf.W2_, clf.b2_), np.dtype(dtype), clf.classes_,
        operator.inputs[0].full_name, operator.outputs[0].full_name, operator.outputs[1].full_name,
        name=scope.get_unique_variable_name)
    onnx = require("onnx")
    for key, value in constants.items():
        content = value.tolist() if value.dtype.kind == "O" else value.ravel()
        container.add_initializer(key, _tensor_type(onnx, value), value.shape, content)
    for op, inputs, outputs, attrs in nodes:
        container.add_node(op, inputs, outputs, name=scope.get_unique_operator_name(op), **attrs)
