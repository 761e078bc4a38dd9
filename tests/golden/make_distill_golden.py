"""Golden values for distill/losses: logit KD and feature losses, values and student gradients.

Run with Debian's interpreter: /usr/bin/python3 tests/golden/make_distill_golden.py
Writes tests/golden/distill_golden.safetensors. Every case `c` stores c.s (student input), c.t (teacher
input), optionally c.mask, c.loss (scalar) and c.ds (d loss / d student). The teacher side is detached,
so its gradient is not stored: the C++ test checks it stays undefined.
The formulas are the textbook / INC ones written with torch.nn.functional, not a port of losses.cpp.
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from safetensors_writer import save  # noqa: E402

torch.manual_seed(0)
out = {}


def case(name, s, t, fn, mask=None):
    s = s.clone().requires_grad_(True)
    loss = fn(s, t.detach())
    loss.backward()
    out[f"{name}.s"] = s.detach()
    out[f"{name}.t"] = t
    out[f"{name}.loss"] = loss.detach().reshape(1)
    out[f"{name}.ds"] = s.grad
    if mask is not None:
        out[f"{name}.mask"] = mask


# ---- logit KD: L = T^2 * D(z_s / T, z_t / T) ----
zs = torch.randn(6, 10) * 2
zt = torch.randn(6, 10) * 3
for T in (1.0, 2.0, 4.0):
    tag = str(int(T))
    # Soft cross-entropy, INC's SoftCrossEntropy: mean over rows of -sum p_t log p_s.
    case(f"kd_ce_T{tag}", zs, zt, lambda s, t: T * T * (-(F.softmax(t / T, 1) * F.log_softmax(s / T, 1)).sum(1)).mean())
    # The true KL (batchmean) and INC's element mean.
    case(f"kd_kl_batchmean_T{tag}", zs, zt,
         lambda s, t: T * T * F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean"))
    case(f"kd_kl_mean_T{tag}", zs, zt,
         lambda s, t: T * T * F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="mean"))
    case(f"kd_mse_T{tag}", zs, zt, lambda s, t: T * T * F.mse_loss(s / T, t / T))

# ---- feature losses on [B, N, D] ----
fs = torch.randn(3, 5, 8)
ft = torch.randn(3, 5, 8) * 1.5 + 0.2
case("feat_mse", fs, ft, lambda s, t: F.mse_loss(s, t))
case("feat_l1", fs, ft, lambda s, t: F.l1_loss(s, t))
case("feat_kl_logits", fs, ft,
     lambda s, t: F.kl_div(F.log_softmax(s, -1), F.softmax(t, -1), reduction="sum") / (3 * 5))
case("feat_cosine", fs, ft, lambda s, t: (1 - F.cosine_similarity(s, t, dim=-1)).mean())

# Attention-like probabilities [B, H, N, N] with a few exact zeros in the teacher (masked keys).
ps = F.softmax(torch.randn(2, 2, 4, 4) * 2, -1)
pt_logits = torch.randn(2, 2, 4, 4) * 2
pt_logits[..., -1] = -float("inf")
pt = F.softmax(pt_logits, -1)


def kl_probs(s, t):
    # sum_j t_j (log t_j - log s_j) per row, 0 where t_j = 0 (xlogy), mean over rows.
    return (torch.xlogy(t, t) - t * torch.log(s)).sum(-1).mean()


case("feat_kl_probs", ps, pt, kl_probs)
case("feat_mse_probs", ps, pt, lambda s, t: F.mse_loss(s, t))

# Masked: padded tokens (mask 0) excluded, mean over valid rows.
mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.uint8)
mf = mask.float()
case("mask_mse", fs, ft, lambda s, t: (((s - t) ** 2).mean(-1) * mf).sum() / mf.sum(), mask)
case("mask_l1", fs, ft, lambda s, t: ((s - t).abs().mean(-1) * mf).sum() / mf.sum(), mask)
case("mask_kl_logits", fs, ft,
     lambda s, t: (F.kl_div(F.log_softmax(s, -1), F.softmax(t, -1), reduction="none").sum(-1) * mf).sum() / mf.sum(),
     mask)
case("mask_cosine", fs, ft, lambda s, t: ((1 - F.cosine_similarity(s, t, dim=-1)) * mf).sum() / mf.sum(), mask)

save(os.path.join(os.path.dirname(__file__), "distill_golden.safetensors"), out,
     {"torch": torch.__version__, "script": "make_distill_golden.py"})
print(f"wrote {len(out)} tensors")
