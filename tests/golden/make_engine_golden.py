"""Golden values for the engine: a small model (Linear, LayerNorm, GELU, one attention block,
cross-entropy with label smoothing 0.1) written with the functional ops and run forward and backward in
PyTorch. tests/test_engine_golden.cpp rebuilds it from quench's functional ops and must reproduce the
loss, the logits, the attention probabilities and every parameter gradient to 1e-4 relative.

Run from anywhere with Debian's interpreter: /usr/bin/python3 tests/golden/make_engine_golden.py
Writes tests/golden/engine_golden.safetensors (tests/golden/safetensors_writer.py): input, target
(int32), logits, probs [B, H, N, N], loss, param.<name> and grad.<name>. Fixed seed, so a rerun
reproduces the file byte for byte.
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from safetensors_writer import save  # noqa: E402

torch.manual_seed(0)
B, N, D_IN, D, H, C = 3, 5, 6, 8, 2, 4
hd = D // H

p = {
    "embed.weight": torch.randn(D, D_IN) * 0.4, "embed.bias": torch.randn(D) * 0.1,
    "norm1.weight": 1 + 0.1 * torch.randn(D), "norm1.bias": 0.1 * torch.randn(D),
    "attn.qkv.weight": torch.randn(3 * D, D) * 0.3, "attn.qkv.bias": torch.randn(3 * D) * 0.1,
    "attn.proj.weight": torch.randn(D, D) * 0.3, "attn.proj.bias": torch.randn(D) * 0.1,
    "norm2.weight": 1 + 0.1 * torch.randn(D), "norm2.bias": 0.1 * torch.randn(D),
    "fc1.weight": torch.randn(2 * D, D) * 0.3, "fc1.bias": torch.randn(2 * D) * 0.1,
    "fc2.weight": torch.randn(D, 2 * D) * 0.3, "fc2.bias": torch.randn(D) * 0.1,
    "head.weight": torch.randn(C, D) * 0.3, "head.bias": torch.randn(C) * 0.1,
}
for t in p.values():
    t.requires_grad_(True)
x = torch.randn(B, N, D_IN)
target = torch.randint(0, C, (B,), dtype=torch.int64)


def forward(x):
    h = F.linear(x, p["embed.weight"], p["embed.bias"])
    a = F.layer_norm(h, (D,), p["norm1.weight"], p["norm1.bias"], eps=1e-6)
    q, k, v = F.linear(a, p["attn.qkv.weight"], p["attn.qkv.bias"]).reshape(B, N, 3, H, hd).permute(2, 0, 3, 1, 4)
    probs = ((q @ k.transpose(-2, -1)) * hd ** -0.5).softmax(-1)
    h = h + F.linear((probs @ v).transpose(1, 2).reshape(B, N, D), p["attn.proj.weight"], p["attn.proj.bias"])
    m = F.layer_norm(h, (D,), p["norm2.weight"], p["norm2.bias"], eps=1e-6)
    h = h + F.linear(F.gelu(F.linear(m, p["fc1.weight"], p["fc1.bias"])), p["fc2.weight"], p["fc2.bias"])
    logits = F.linear(h.mean(1), p["head.weight"], p["head.bias"])
    return logits, probs


logits, probs = forward(x)
loss = F.cross_entropy(logits, target, label_smoothing=0.1)
loss.backward()

out = {"input": x, "target": target.to(torch.int32), "logits": logits.detach(), "probs": probs.detach(),
       "loss": loss.detach().reshape(())}
for name, t in p.items():
    out["param." + name] = t.detach()
    out["grad." + name] = t.grad
save(os.path.join(os.path.dirname(__file__), "engine_golden.safetensors"), out,
     {"torch": torch.__version__, "script": "tests/golden/make_engine_golden.py"})
print("loss", loss.item())
