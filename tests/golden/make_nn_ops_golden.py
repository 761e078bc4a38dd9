#!/usr/bin/python3
"""Writes tests/golden/nn_ops.safetensors: inputs, outputs and input-gradients of quench's nn ops
computed by PyTorch (Debian's torch 1.13), read back by tests/test_nn_ops_golden.cpp. Tensors are named
<case>.<what> (e.g. softmax.x, softmax.dx); integer parameters are int32 tensors. Fixed seed, so a rerun
reproduces the file byte for byte.

Run from anywhere with Debian's interpreter: /usr/bin/python3 tests/golden/make_nn_ops_golden.py
"""
import os
import sys
import warnings

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_writer import save  # noqa: E402

torch.manual_seed(0)
warnings.filterwarnings("ignore", message="reduction: 'mean' divides")
records = {}


def put(name, t):
    assert name not in records, name
    records[name] = t.detach().clone()


def leaf(t):
    return t.clone().requires_grad_(True)


# softmax / log_softmax: y = f(x, dim), dx for an upstream gradient g.
for name, fn, shape, dim in [("softmax", F.softmax, (4, 7), 1), ("softmax_mid", F.softmax, (3, 5, 4), 1),
                             ("log_softmax", F.log_softmax, (4, 7), -1),
                             ("log_softmax_first", F.log_softmax, (5, 3), 0)]:
    x = leaf(torch.randn(shape) * 3)
    y = fn(x, dim)
    g = torch.randn(shape)
    y.backward(g)
    put(name + ".x", x); put(name + ".dim", torch.tensor([dim], dtype=torch.int32))
    put(name + ".y", y); put(name + ".g", g); put(name + ".dx", x.grad)

# layer_norm over the last dim with weight and bias, and over two trailing dims without them.
x = leaf(torch.randn(6, 16) * 2 + 1)
w = leaf(torch.randn(16))
b = leaf(torch.randn(16))
y = F.layer_norm(x, (16,), w, b, 1e-5)
g = torch.randn(6, 16)
y.backward(g)
for k, v in dict(x=x, w=w, b=b, y=y, g=g, dx=x.grad, dw=w.grad, db=b.grad).items():
    put("layer_norm." + k, v)
x = leaf(torch.randn(3, 4, 5))
y = F.layer_norm(x, (4, 5), None, None, 1e-3)
g = torch.randn(3, 4, 5)
y.backward(g)
for k, v in dict(x=x, y=y, g=g, dx=x.grad).items():
    put("layer_norm_noaffine." + k, v)

# cross_entropy: mean with ignore_index and label smoothing; none over [N, C, d]; sum plain.
cases = [
    ("ce_mean", (8, 5), [1, -100, 3, 0, 4, -100, 2, 2], -100, 0.1, "mean"),
    ("ce_none", (3, 4, 5), [[0, 1, 2, 3, 7], [7, 3, 3, 0, 1], [2, 2, 7, 1, 0]], 7, 0.2, "none"),
    ("ce_sum", (6, 4), [0, 1, 2, 3, 3, 1], -100, 0.0, "sum"),
]
for name, shape, target, ignore, ls, red in cases:
    x = leaf(torch.randn(shape) * 2)
    t = torch.tensor(target, dtype=torch.int64)
    loss = F.cross_entropy(x, t, ignore_index=ignore, label_smoothing=ls, reduction=red)
    g = torch.randn(loss.shape)
    loss.backward(g)
    put(name + ".x", x); put(name + ".target", t.to(torch.int32))
    put(name + ".params", torch.tensor([ignore, int(round(ls * 100))], dtype=torch.int32))
    put(name + ".loss", loss); put(name + ".g", g); put(name + ".dx", x.grad)

# kl_div: probabilities with zeros (batchmean), log-probabilities (sum), mean.
for name, log_target, red in [("kl_batchmean", False, "batchmean"), ("kl_log_sum", True, "sum"),
                              ("kl_mean", False, "mean")]:
    inp = leaf(F.log_softmax(torch.randn(4, 6), 1))
    p = F.softmax(torch.randn(4, 6) * 2, 1)
    p[0, 2] = 0.0
    p[3, 5] = 0.0
    tgt = leaf(F.log_softmax(torch.randn(4, 6), 1) if log_target else p)
    loss = F.kl_div(inp, tgt, reduction=red, log_target=log_target)
    g = torch.randn(())
    loss.backward(g)
    for k, v in dict(input=inp, target=tgt, loss=loss, g=g, dinput=inp.grad, dtarget=tgt.grad).items():
        put(name + "." + k, v)

# mse_loss (mean) and l1_loss (sum).
for name, fn, red in [("mse", F.mse_loss, "mean"), ("l1", F.l1_loss, "sum")]:
    a = leaf(torch.randn(5, 3))
    t = leaf(torch.randn(5, 3))
    loss = fn(a, t, reduction=red)
    g = torch.randn(())
    loss.backward(g)
    for k, v in dict(input=a, target=t, loss=loss, g=g, dinput=a.grad, dtarget=t.grad).items():
        put(name + "." + k, v)

# embedding with repeated indices (their gradients add up).
w = leaf(torch.randn(10, 4))
idx = torch.tensor([[1, 3, 3], [9, 0, 1]])
y = F.embedding(idx, w)
g = torch.randn(2, 3, 4)
y.backward(g)
for k, v in dict(weight=w, indices=idx.to(torch.int32), y=y, g=g, dweight=w.grad).items():
    put("embedding." + k, v)

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nn_ops.safetensors")
save(out, records, {"torch": torch.__version__, "script": "tests/golden/make_nn_ops_golden.py"})
print("wrote", out, os.path.getsize(out), "bytes,", len(records), "tensors")
