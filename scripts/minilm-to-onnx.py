#!/usr/bin/env python3
"""Builds the ONNX graph of all-MiniLM-L6-v2 (a 6-layer BERT) straight from
model.safetensors, with no torch: onnx.helper + numpy + safetensors.

    minilm-to-onnx.py MODEL_DIR OUT.onnx [--variant fused|plain] [--check]

Inputs `input_ids`, `attention_mask` (int64, [batch, seq], right-padded);
output `sentence_embedding` (float32, [batch, 384]): the token vectors'
mean under the mask, at unit length, as sentence-transformers' Pooling and
Normalize modules. (Pooling inside the graph costs the runtime next to
nothing; done in the caller it is a loop over batch x seq x 384 floats.)

`fused` (the default) writes ONNX Runtime's contrib kernels directly
(EmbedLayerNormalization, Attention, SkipLayerNormalization, BiasGelu): the
same graph onnxruntime.transformers' optimizer aims for, without depending on
its pattern matching. `plain` uses standard ONNX ops only, for runtimes other
than ONNX Runtime. `--check` runs the graph (OpenVINO, or else ONNX Runtime) and compares it
with a numpy forward pass of the same weights.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

MS = "com.microsoft"


def load(model_dir):
    config = json.loads((model_dir / "config.json").read_text())
    weights = load_file(str(model_dir / "model.safetensors"))
    # Some exports prefix every tensor with "bert."; accept both.
    weights = {k.removeprefix("bert."): v for k, v in weights.items()}
    return config, weights


class Graph:
    def __init__(self, weights):
        self.w = weights
        self.nodes = []
        self.inits = []
        self.count = 0

    def name(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, hint, array):
        n = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), n))
        return n

    def op(self, op_type, inputs, hint=None, domain=None, outputs=1, **attrs):
        outs = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(
            helper.make_node(op_type, inputs, outs, domain=domain, **attrs)
        )
        return outs[0] if outputs == 1 else outs

    def linear_weight(self, key):
        # torch Linear stores [out, in]; MatMul wants [in, out].
        return self.w[key].T


def embeddings(g, config, fused):
    w = g.w
    eps = config["layer_norm_eps"]
    # Sentence-transformers never passes token_type_ids for one-sentence
    # inputs, so every token uses segment 0: fold that row into positions.
    pos = w["embeddings.position_embeddings.weight"] + w[
        "embeddings.token_type_embeddings.weight"
    ][0]
    gamma = g.const("emb_ln_g", w["embeddings.LayerNorm.weight"])
    beta = g.const("emb_ln_b", w["embeddings.LayerNorm.bias"])
    word = g.const("word_emb", w["embeddings.word_embeddings.weight"])
    if fused:
        ids32 = g.op("Cast", ["input_ids"], to=TensorProto.INT32)
        mask32 = g.op("Cast", ["attention_mask"], to=TensorProto.INT32)
        x, mask_index = g.op(
            "EmbedLayerNormalization",
            [ids32, "", word, g.const("pos_emb", pos), "", gamma, beta, mask32],
            hint="emb",
            domain=MS,
            outputs=2,
            epsilon=eps,
        )
        return x, mask_index
    tok = g.op("Gather", [word, "input_ids"], axis=0)
    seq = g.op("Shape", ["input_ids"], start=1, end=2)
    zero = g.const("zero", np.array([0], dtype=np.int64))
    positions = g.op("Slice", [g.const("pos_emb", pos), zero, seq])
    x = g.op("Add", [tok, positions])
    x = g.op("LayerNormalization", [x, gamma, beta], axis=-1, epsilon=eps)
    # Additive mask [batch, 1, 1, seq]: 0 for tokens, a large negative for
    # padding (what transformers does, with float32's minimum).
    m = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    one = g.const("one", np.array(1.0, dtype=np.float32))
    inv = g.op("Sub", [one, m])
    big = g.const("neg", np.array(np.finfo(np.float32).min, dtype=np.float32))
    bias = g.op("Mul", [inv, big])
    axes = g.const("axes", np.array([1, 2], dtype=np.int64))
    bias = g.op("Unsqueeze", [bias, axes])
    return x, bias


def layer(g, config, i, x, mask, fused):
    p = f"encoder.layer.{i}."
    w = g.w
    heads = config["num_attention_heads"]
    hidden = config["hidden_size"]
    eps = config["layer_norm_eps"]
    head = hidden // heads

    def lin(name):
        return g.linear_weight(p + name + ".weight"), w[p + name + ".bias"]

    (wq, bq), (wk, bk), (wv, bv) = (
        lin("attention.self.query"),
        lin("attention.self.key"),
        lin("attention.self.value"),
    )
    wo, bo = lin("attention.output.dense")
    w1, b1 = lin("intermediate.dense")
    w2, b2 = lin("output.dense")
    ln1 = (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
    ln2 = (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])

    if fused:
        qkv_w = g.const("qkv_w", np.concatenate([wq, wk, wv], axis=1))
        qkv_b = g.const("qkv_b", np.concatenate([bq, bk, bv]))
        a = g.op("Attention", [x, qkv_w, qkv_b, mask], domain=MS, num_heads=heads)
        a = g.op("MatMul", [a, g.const("wo", wo)])
        x1 = g.op(
            "SkipLayerNormalization",
            [a, x, g.const("ln1_g", ln1[0]), g.const("ln1_b", ln1[1]), g.const("bo", bo)],
            domain=MS,
            epsilon=eps,
        )
        h = g.op("MatMul", [x1, g.const("w1", w1)])
        h = g.op("BiasGelu", [h, g.const("b1", b1)], domain=MS)
        f = g.op("MatMul", [h, g.const("w2", w2)])
        return g.op(
            "SkipLayerNormalization",
            [f, x1, g.const("ln2_g", ln2[0]), g.const("ln2_b", ln2[1]), g.const("b2", b2)],
            domain=MS,
            epsilon=eps,
        )

    # Plain ONNX. The 1/sqrt(head) scale is folded into the query projection.
    scale = np.float32(1.0 / np.sqrt(head))
    shape = g.const("shape", np.array([0, 0, heads, head], dtype=np.int64))

    def proj(wt, b, s=np.float32(1.0)):
        y = g.op("MatMul", [x, g.const("w", wt * s)])
        y = g.op("Add", [y, g.const("b", b * s)])
        return g.op("Reshape", [y, shape])

    q = g.op("Transpose", [proj(wq, bq, scale)], perm=[0, 2, 1, 3])
    k = g.op("Transpose", [proj(wk, bk)], perm=[0, 2, 3, 1])
    v = g.op("Transpose", [proj(wv, bv)], perm=[0, 2, 1, 3])
    s = g.op("Add", [g.op("MatMul", [q, k]), mask])
    pr = g.op("Softmax", [s], axis=-1)
    ctx = g.op("Transpose", [g.op("MatMul", [pr, v])], perm=[0, 2, 1, 3])
    ctx = g.op("Reshape", [ctx, g.const("shape", np.array([0, 0, hidden], dtype=np.int64))])
    a = g.op("Add", [g.op("MatMul", [ctx, g.const("wo", wo)]), g.const("bo", bo)])
    x1 = g.op(
        "LayerNormalization",
        [g.op("Add", [a, x]), g.const("ln1_g", ln1[0]), g.const("ln1_b", ln1[1])],
        axis=-1,
        epsilon=eps,
    )
    h = g.op("Add", [g.op("MatMul", [x1, g.const("w1", w1)]), g.const("b1", b1)])
    # Exact (erf) GELU, as BERT's "gelu".
    half = g.const("half", np.array(0.5, dtype=np.float32))
    one = g.const("one", np.array(1.0, dtype=np.float32))
    r2 = g.const("sqrt2", np.array(np.sqrt(2.0), dtype=np.float32))
    gelu = g.op("Mul", [g.op("Mul", [h, half]), g.op("Add", [g.op("Erf", [g.op("Div", [h, r2])]), one])])
    f = g.op("Add", [g.op("MatMul", [gelu, g.const("w2", w2)]), g.const("b2", b2)])
    return g.op(
        "LayerNormalization",
        [g.op("Add", [f, x1]), g.const("ln2_g", ln2[0]), g.const("ln2_b", ln2[1])],
        axis=-1,
        epsilon=eps,
    )


def pool(g, x):
    """Mean over unmasked tokens, then L2 normalisation (clamps as torch's)."""
    m = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    m3 = g.op("Unsqueeze", [m, g.const("axis2", np.array([2], dtype=np.int64))])
    seq_axis = g.const("axis1", np.array([1], dtype=np.int64))
    summed = g.op("ReduceSum", [g.op("Mul", [x, m3]), seq_axis], keepdims=0)
    count = g.op("ReduceSum", [m, seq_axis], keepdims=1)
    count = g.op("Max", [count, g.const("min_count", np.array(1e-9, dtype=np.float32))])
    mean = g.op("Div", [summed, count])
    norm = g.op("ReduceL2", [mean], axes=[1], keepdims=1)
    norm = g.op("Max", [norm, g.const("min_norm", np.array(1e-12, dtype=np.float32))])
    g.nodes.append(helper.make_node("Div", [mean, norm], ["sentence_embedding"]))


def build(config, weights, fused):
    if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
        sys.exit(f"unsupported model: {config.get('model_type')} / {config.get('hidden_act')}")
    g = Graph(weights)
    x, mask = embeddings(g, config, fused)
    for i in range(config["num_hidden_layers"]):
        x = layer(g, config, i, x, mask, fused)
    pool(g, x)
    dims = ["batch", "sequence"]
    graph = helper.make_graph(
        g.nodes,
        "all-minilm-l6-v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, dims),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, dims),
        ],
        [
            helper.make_tensor_value_info(
                "sentence_embedding", TensorProto.FLOAT, ["batch", config["hidden_size"]]
            )
        ],
        g.inits,
    )
    opsets = [helper.make_opsetid("", 17)]
    if fused:
        opsets.append(helper.make_opsetid(MS, 1))
    # IR 8 is old enough for every ONNX Runtime that knows opset 17.
    model = helper.make_model(graph, opset_imports=opsets, ir_version=8)
    model.producer_name = "ragchat minilm-to-onnx"
    onnx.checker.check_model(model)
    return model


def reference(config, w, ids, mask):
    """numpy forward pass of BertModel, the yardstick for --check."""

    def ln(x, g, b):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + config["layer_norm_eps"]) * g + b

    from math import erf

    verf = np.vectorize(erf)
    heads = config["num_attention_heads"]
    hidden = config["hidden_size"]
    head = hidden // heads
    bsz, seq = ids.shape
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][:seq]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = ln(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"]).astype(np.float64)
    bias = (1.0 - mask[:, None, None, :]) * -1e9
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."

        def lin(t, n):
            return t @ w[p + n + ".weight"].T + w[p + n + ".bias"]

        def split(t):
            return t.reshape(bsz, seq, heads, head).transpose(0, 2, 1, 3)

        q, k, v = (split(lin(x, "attention.self." + n)) for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head) + bias
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(0, 2, 1, 3).reshape(bsz, seq, hidden)
        x = ln(lin(ctx, "attention.output.dense") + x, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
        h = lin(x, "intermediate.dense")
        h = h * 0.5 * (1.0 + verf(h / np.sqrt(2.0)))
        x = ln(lin(h, "output.dense") + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    return x


def run_graph(path, ids, mask):
    """Runs the graph in float32 with whichever runtime is installed."""
    try:
        import openvino as ov
    except ImportError:
        ov = None
    if ov is not None:
        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        return compiled({"input_ids": ids, "attention_mask": mask})[0], "OpenVINO"
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input_ids": ids, "attention_mask": mask})[0], "ONNX Runtime"


def check(path, config, weights):
    # "[CLS] hello world! [SEP]" and a shorter row padded on the right.
    ids = np.array([[101, 7592, 2088, 999, 102], [101, 7592, 102, 0, 0]], dtype=np.int64)
    mask = (ids != 0).astype(np.int64)
    got, runtime = run_graph(path, ids, mask)
    hidden = reference(config, weights, ids, mask.astype(np.float64))
    want = (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
    worst = min(
        float(a @ r / np.linalg.norm(a) / np.linalg.norm(r)) for a, r in zip(got, want)
    )
    print(f"check ({runtime}, float32): worst sentence cosine to a numpy forward pass {worst:.7f}")
    if worst < 0.99999 or not np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5):
        sys.exit("check failed: the ONNX graph does not compute the sentence embedding")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--variant", choices=["fused", "plain"], default="fused")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    config, weights = load(args.model_dir)
    model = build(config, weights, args.variant == "fused")
    tmp = args.out.with_suffix(".tmp")
    onnx.save(model, str(tmp))
    if args.check:
        check(tmp, config, weights)
    tmp.replace(args.out)
    print(f"wrote {args.out} ({args.variant})")


if __name__ == "__main__":
    main()
