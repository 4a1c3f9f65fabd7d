"""Any ONNX classifier's accuracy circuit: graph surgery on the requester's model, pure functions
on ``onnx.ModelProto``.

The model's float initializers, named by a LAYOUT (``(name, shape)`` pairs in the federated
parameter vector's order: the PyTorch ``state_dict`` / Flower ArrayRecord order), are lifted out
of the graph into committed input(s) and rebuilt inside it by ``Gather`` with constant indices
and ``Reshape`` (a Gather costs no rows; a Slice of a committed input copies all of it), so the
proof's commitment to its ``params`` input is the commitment the round put on chain:

- ``params`` [d], or for a round in chunks of C, ``params_00``.. [C] each (zero-padded) joined
  by ``Concat``, as circuits.accuracy takes ``model_00``..;
- ``x`` [samples, *sample shape] and ``labels`` [samples].

Every input is read at one ezkl input scale ``t`` and fed as field elements: the committed
integer ``q`` is read as ``q / 2^t``. The aggregate is the SUM of m updates quantized at 2^-s, so
the model's parameters are ``q / (m 2^s)``: with m a power of two ``t = s + log2 m`` makes that
exact and free; otherwise ``t = s`` and a ``Mul`` by 1/m (a constant rounded to 2^-t). ``x`` is
fed as ``round(x 2^t)``; ``labels`` as the class integers, read as ``l / 2^t`` and multiplied
back by 2^t inside.

The head counts strict wins without Equal or ArgMax (docs/onnx-accuracy.md): ``onehot = relu(1 -
(label - c)^2)``, the label's logit ``sum_c onehot * logits``, ``ge`` the classes whose logit
is at least it, ``correct = relu(2 - ge)`` (1 exactly when only the label reaches its own
logit). Outputs, flattened by ezkl into one public vector in this order, each an integer as it
stands: ``[correct, range_error, range_tag]``. The set is committed, never public (the chain binds
it by its commitments), so the circuit checks its ranges: ``range_error`` counts the x values
outside the calibrated ``input_range`` and the labels outside 0..classes - 1, and each such value
is replaced by one in range (``x_fill``, 0) before the model sees it, so that an out-of-range set
is still provable as such (within the comparisons' reach, +-2^27 here). Both counts are sums of
comparison flags, which ezkl gives scale 0 (a ``relu(2 - ge)`` would take the constant's scale t,
and neither a Mul by 2^-t nor a Div by 2^t is rescaled back at an output). ``range_tag`` is always
0 (computed as ``range_error - range_error``: tract folds a product with the constant 0 into a
constant, which ezkl cannot output): the parameters are the round's proven aggregate, so nothing
else is range-checked; the slot keeps the digits circuit's layout.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

from stakelearn.circuits.chunk import chunk_count, split_vector
from stakelearn.errors import InputError

# What ezkl 23.0.5 proves with parameters from committed inputs (docs/onnx-accuracy.md).
SUPPORTED_OPS = frozenset(
    {
        "Conv",
        "Relu",
        "AveragePool",
        "MaxPool",
        "GlobalAveragePool",
        "Flatten",
        "Reshape",
        "Gemm",
        "MatMul",
        "Add",
        "Sub",
        "Mul",
        "Concat",
        "Gather",
        "Constant",
        "Identity",
    }
)
ADVICE = {
    "BatchNormalization": "fold it into the preceding Conv or Gemm before export, or remove it",
    "ArgMax": "export the logits: the circuit counts strict wins itself",
    "Softmax": "export the logits: softmax does not change which class wins",
    "LogSoftmax": "export the logits: log-softmax does not change which class wins",
    "Equal": "ezkl gives its 0/1 output the input's scale",
}
FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16})
OUTPUT_NAMES = ("correct_out", "range_error_out", "range_tag_out")
X_INPUT = "evaluation_x"  # the committed x, before its range check feeds the model's own input


def check_ops(model: onnx.ModelProto) -> None:
    """InputError naming every op of the graph the accuracy circuit cannot prove."""
    unsupported = sorted({node.op_type for node in model.graph.node} - SUPPORTED_OPS)
    if not unsupported:
        return
    advice = [(op, ADVICE[op]) for op in unsupported if op in ADVICE]
    hint = advice[0][1] if len(unsupported) == 1 and advice else "; ".join(f"{op}: {text}" for op, text in advice)
    raise InputError(
        f"the model uses {', '.join(unsupported)}, which the accuracy circuit cannot prove"
        + (f": {hint}" if hint else "")
        + f" (it proves {', '.join(sorted(SUPPORTED_OPS))})"
    )


def check_conv(model: onnx.ModelProto) -> None:
    """A Conv must pad 0 or 1 (what was seen proven) and have 2-d kernels."""
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if any(p not in (0, 1) for p in attributes.get("pads", [])) or attributes.get("auto_pad", b"NOTSET") not in (
            b"NOTSET",
            "NOTSET",
        ):
            raise InputError(
                f"Conv {node.name or node.output[0]} pads other than 0 or 1, which the circuit cannot prove"
            )


def float_initializers(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    return [t for t in model.graph.initializer if t.data_type in FLOAT_TYPES]


def default_layout(model: onnx.ModelProto) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """The model's float initializers in graph order: the parameter vector's layout when the
    exporter kept the ``state_dict`` order (torch.onnx does for plain modules)."""
    return tuple((t.name, tuple(int(d) for d in t.dims)) for t in float_initializers(model))


def check_layout(model: onnx.ModelProto, layout) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """The layout as a tuple, if it names each float initializer once with its shape."""
    layout = tuple((str(name), tuple(int(d) for d in shape)) for name, shape in layout)
    shapes = dict(default_layout(model))
    names = [name for name, _ in layout]
    if len(set(names)) != len(names):
        raise InputError("the layout names a parameter twice")
    for name, shape in layout:
        if name not in shapes:
            raise InputError(f"the layout names {name!r}, which is not a float initializer of the model")
        if shapes[name] != shape:
            raise InputError(f"the layout gives {name!r} the shape {shape}, the model has {shapes[name]}")
    missing = sorted(set(shapes) - set(names))
    if missing:
        raise InputError(
            f"the layout leaves out {missing[0]!r}: every float initializer must come from the committed parameters"
        )
    return layout


def parameter_count(layout) -> int:
    return sum(math.prod(shape) for _, shape in layout)


def model_parameters(model: onnx.ModelProto, layout) -> np.ndarray:
    """The model's own initializers as one flat float vector in the layout's order."""
    arrays = {t.name: numpy_helper.to_array(t) for t in float_initializers(model)}
    return np.concatenate([arrays[name].astype(np.float64).ravel() for name, _ in layout])


def sample_shape(model: onnx.ModelProto) -> tuple[int, ...]:
    """One sample's shape: the model's one data input without its batch dimension."""
    inputs = data_inputs(model)
    if len(inputs) != 1:
        raise InputError(f"the model must take one input (the batch of samples), it takes {[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim[1:]
    if any(d.dim_value < 1 for d in dims):
        raise InputError("the model's input must have a fixed shape after the batch dimension")
    return tuple(int(d.dim_value) for d in dims)


def data_inputs(model: onnx.ModelProto) -> list:
    initializers = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def with_batch(model: onnx.ModelProto, samples: int) -> onnx.ModelProto:
    """The model with its input's batch dimension fixed to ``samples`` and its shapes inferred."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    del model.graph.value_info[:]
    for value in [*data_inputs(model), *model.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_value = samples
    try:
        return shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as error:  # onnx's InferenceError and checker errors: the model is not consistent
        raise InputError(f"the model's shapes do not infer with a batch of {samples}: {error}") from None


def class_count(model: onnx.ModelProto) -> int:
    outputs = model.graph.output
    if len(outputs) != 1:
        raise InputError(f"the model must have one output (the logits), it has {len(outputs)}")
    dims = outputs[0].type.tensor_type.shape.dim
    if len(dims) != 2 or dims[1].dim_value < 2:
        raise InputError("the model's output must be the logits, [batch, classes] with at least 2 classes")
    return int(dims[1].dim_value)


def input_scale(scale_bits: int, m: int) -> int:
    """The circuit's ezkl input scale: s + log2 m when m is a power of two (1/m is then free)."""
    return scale_bits + (m.bit_length() - 1 if m & (m - 1) == 0 else 0)


def parameter_parts(params: np.ndarray, chunk: int) -> list[np.ndarray]:
    """The committed vector as the circuit's params input(s) take it: whole or in padded chunks."""
    params = np.asarray(params, dtype=np.int64)
    return [params] if chunk == 0 else split_vector(params, chunk)


def params_names(length: int, chunk: int) -> list[str]:
    return ["params"] if chunk == 0 else [f"params_{k:02d}" for k in range(chunk_count(length, chunk))]


class _Nodes:
    """New nodes and constants, named under one prefix so nothing clashes with the model's."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.nodes, self._count = prefix, [], 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def const(self, hint: str, array) -> str:
        out = self.name(hint)
        self.nodes.append(helper.make_node("Constant", [], [out], value=numpy_helper.from_array(np.asarray(array))))
        return out

    def op(self, op_type: str, inputs: list[str], hint: str, out: str | None = None, **attributes) -> str:
        out = out or self.name(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attributes))
        return out


def _float(value) -> np.ndarray:
    return np.asarray(value, dtype=np.float32)


def accuracy_graph(
    model: onnx.ModelProto,
    layout,
    samples: int,
    scale_bits: int,
    m: int = 1,
    chunk: int = 0,
    *,
    input_range: tuple[int, int],
) -> onnx.ModelProto:
    """The accuracy circuit's graph for ``model`` (see the module docstring)."""
    check_ops(model)
    check_conv(model)
    layout = check_layout(model, layout)
    model = with_batch(model, samples)
    _check_names_free(model, params_names(parameter_count(layout), chunk))
    classes, features = class_count(model), math.prod(sample_shape(model))
    t = input_scale(scale_bits, m)
    graph = model.graph
    pre, head = _Nodes("lift_"), _Nodes("head_")
    d = parameter_count(layout)
    names = params_names(d, chunk)
    width = d if chunk == 0 else chunk
    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [width]) for name in names]
    source = names[0] if chunk == 0 else pre.op("Concat", names, "params", axis=0)
    if t == scale_bits and m != 1:  # 1/m is not a power of two: a Mul, rounded at the scale
        source = pre.op("Mul", [source, pre.const("inverse_m", _float(1 / m))], "mean")
    offset = 0
    for name, shape in layout:
        size = math.prod(shape)
        flat = pre.op("Gather", [source, pre.const("index", np.arange(offset, offset + size))], "flat", axis=0)
        pre.op("Reshape", [flat, pre.const("shape", np.array(shape or (1,), dtype=np.int64))], "p", out=name)
        offset += size
    body = _split_conv_biases(list(graph.node), _shapes(model))
    x = data_inputs(model)[0].name
    logits = graph.output[0].name

    # The committed set's ranges: x within input_range (integers at scale t), labels classes.
    lo, hi = input_range
    fill = min(max(0, lo), hi)  # what an out-of-range x value is replaced by
    bad_x = _outside(pre, X_INPUT, lo / 2**t, hi / 2**t)
    pre.op(
        "Add",
        [
            X_INPUT,
            pre.op(
                "Mul", [pre.op("Sub", [pre.const("fill", _float(fill / 2**t)), X_INPUT], "to_fill"), bad_x], "refill"
            ),
        ],
        "x",
        out=x,
    )
    bad_labels = _outside(pre, "labels", 0.0, (classes - 1) / 2**t)
    safe_labels = pre.op("Sub", ["labels", pre.op("Mul", ["labels", bad_labels], "to_zero")], "labels")
    axis0 = head.const("axis0", np.array([0]))
    flat_bad_x = head.op("Reshape", [bad_x, head.const("flat", np.array([samples * features]))], "bad_x")
    range_error = head.op(
        "Add",
        [
            head.op("ReduceSum", [flat_bad_x, axis0], "count", keepdims=1),
            head.op("ReduceSum", [bad_labels, axis0], "count", keepdims=1),
        ],
        "range_error",
    )

    labels = head.op("Mul", [safe_labels, head.const("two_t", _float(2**t))], "labels")
    diff = head.op(
        "Sub",
        [
            head.op("Unsqueeze", [labels, head.const("axis", np.array([1]))], "col"),
            head.const("classes", _float(np.arange(classes))),
        ],
        "diff",
    )
    one = head.const("one", _float(1))
    onehot = head.op("Relu", [head.op("Sub", [one, head.op("Mul", [diff, diff], "sq")], "near")], "onehot")
    axis1 = head.const("axis1", np.array([1]))
    label_logit = head.op("ReduceSum", [head.op("Mul", [onehot, logits], "picked"), axis1], "label_logit", keepdims=1)
    at_least = head.op("Cast", [head.op("GreaterOrEqual", [logits, label_logit], "ge")], "gef", to=TensorProto.FLOAT)
    ge = head.op("ReduceSum", [at_least, axis1], "ge_count", keepdims=0)
    # A strict win: only the label's own logit reaches it (ge == 1); a tie counts as wrong.
    correct = _count(head, head.op("Less", [ge, head.const("two", _float(2))], "strict"), axis0)
    outputs = {
        "correct": head.op("Identity", [correct], "out", out="correct_out"),
        "range_error": head.op("Identity", [range_error], "out", out="range_error_out"),
        # 0 as a computed value: tract folds a product with the constant 0 into a constant,
        # which ezkl cannot output.
        "range_tag": head.op("Sub", ["range_error_out", "range_error_out"], "out", out="range_tag_out"),
    }

    lifted = {name for name, _ in layout}
    kept = [t for t in graph.initializer if t.name not in lifted]
    new_graph = helper.make_graph(
        pre.nodes + body + head.nodes,
        "stakelearn_onnx_accuracy",
        inputs
        + [helper.make_tensor_value_info(X_INPUT, TensorProto.FLOAT, [samples, *sample_shape(model)])]
        + [helper.make_tensor_value_info("labels", TensorProto.FLOAT, [samples])],
        [helper.make_tensor_value_info(outputs[k], TensorProto.FLOAT, [1]) for k in outputs],
        initializer=kept,
    )
    lifted_model = helper.make_model(new_graph, opset_imports=model.opset_import)
    lifted_model.ir_version = model.ir_version
    onnx.checker.check_model(lifted_model)
    return lifted_model


def _check_names_free(model: onnx.ModelProto, params: list[str]) -> None:
    """The circuit's own input and output names must not be the model's."""
    used = {name for node in model.graph.node for name in [*node.input, *node.output]}
    used |= {value.name for value in model.graph.input}
    taken = sorted(
        used & {*params, "labels", X_INPUT, *OUTPUT_NAMES}
        | {n for n in used if n.startswith(("lift_", "head_", "bias_"))}
    )
    if taken:
        raise InputError(f"the model uses the name {taken[0]!r}, which the accuracy circuit needs: rename it")


def _outside(nodes: _Nodes, value: str, lo: float, hi: float) -> str:
    """1.0 where ``value`` < ``lo`` or > ``hi`` (constants exact at the input scale), else 0.0, at
    scale 0: the two comparison flags added (never both 1)."""
    below = nodes.op(
        "Cast", [nodes.op("Less", [value, nodes.const("lo", _float(lo))], "below")], "flag", to=TensorProto.FLOAT
    )
    above = nodes.op(
        "Cast", [nodes.op("Less", [nodes.const("hi", _float(hi)), value], "above")], "flag", to=TensorProto.FLOAT
    )
    return nodes.op("Add", [below, above], "outside")


def _count(nodes: _Nodes, flags: str, axis: str) -> str:
    as_float = nodes.op("Cast", [flags], "flag", to=TensorProto.FLOAT)
    return nodes.op("ReduceSum", [as_float, axis], "count", keepdims=1)


def _shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    values = [*model.graph.value_info, *model.graph.output, *model.graph.input]
    return {v.name: [int(d.dim_value) for d in v.type.tensor_type.shape.dim] for v in values}


def _split_conv_biases(nodes: list, shapes: dict[str, list[int]]) -> list:
    """Each biased Conv as a bias-less Conv, then its bias added over [B, C, H*W] and reshaped
    back: ezkl refuses a Conv bias that is not a constant, and tract fuses an Add right after a
    Conv back into its bias, but not through a Reshape."""
    out = _Nodes("bias_")
    for node in nodes:
        if node.op_type != "Conv" or len(node.input) < 3 or not node.input[2]:
            out.nodes.append(node)
            continue
        shape = shapes[node.output[0]]
        bare = out.name("conv")
        conv = helper.make_node("Conv", list(node.input[:2]), [bare], name=node.name)
        conv.attribute.extend(node.attribute)
        out.nodes.append(conv)
        rows = out.op("Reshape", [bare, out.const("shape", np.array([shape[0], shape[1], -1]))], "rows")
        bias = out.op("Reshape", [node.input[2], out.const("shape", np.array([1, shape[1], 1]))], "bias")
        added = out.op("Add", [rows, bias], "added")
        out.op("Reshape", [added, out.const("shape", np.array(shape))], "back", out=node.output[0])
    return out.nodes


def quantize_samples(x: np.ndarray, t: int) -> np.ndarray:
    """The evaluation inputs as the circuit reads them: round(x 2^t), integers."""
    return np.rint(np.asarray(x, dtype=np.float64) * 2.0**t).astype(np.int64)


def reference_count(graph: onnx.ModelProto, parts: list[np.ndarray], x_int: np.ndarray, labels, t: int) -> int:
    """The lifted graph's count on the dequantised inputs, in floats by onnx's reference
    evaluator: the quantised model's count (the circuit's rescaling rounds differently only at
    near-ties)."""
    from onnx.reference import ReferenceEvaluator

    names = [i.name for i in graph.graph.input]
    feeds = {name: (np.asarray(p, dtype=np.float64) / 2**t).astype(np.float32) for name, p in zip(names, parts)}
    feeds[names[len(parts)]] = (np.asarray(x_int, dtype=np.float64) / 2**t).astype(np.float32)
    feeds["labels"] = (np.asarray(labels, dtype=np.float64) / 2**t).astype(np.float32)
    correct = ReferenceEvaluator(graph).run(["correct_out"], feeds)[0]
    return int(round(float(correct.ravel()[0])))


def float_count(model: onnx.ModelProto, x: np.ndarray, labels: np.ndarray, parameters=None, layout=None) -> int:
    """The float model's strict-win count (with ``parameters`` in ``layout`` in place of its own)."""
    from onnx.reference import ReferenceEvaluator

    model = onnx.ModelProto.FromString(model.SerializeToString())
    if parameters is not None:
        offset, arrays = 0, {}
        for name, shape in layout:
            size = math.prod(shape)
            arrays[name] = np.asarray(parameters[offset : offset + size], dtype=np.float32).reshape(shape)
            offset += size
        for tensor in model.graph.initializer:
            if tensor.name in arrays:
                tensor.CopyFrom(numpy_helper.from_array(arrays[tensor.name], tensor.name))
    model = with_batch(model, len(x))
    feeds = {data_inputs(model)[0].name: np.asarray(x, dtype=np.float32)}
    return strict_wins(ReferenceEvaluator(model).run(None, feeds)[0], labels)


def strict_wins(logits: np.ndarray, labels: np.ndarray) -> int:
    labels = np.asarray(labels, dtype=np.int64)
    label_logit = logits[np.arange(len(labels)), labels][:, None]
    return int(((logits >= label_logit).sum(axis=1) == 1).sum())
