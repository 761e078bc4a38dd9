"""Golden values for low-bit quantization (quant/): PyTorch's fake quantization of 4-bit weights per
group along K, of activations per token (dynamic, each row's own min / max), and LSQ scale gradients
per group. PyTorch has no grouped fake quantize, so a [N, K] weight with groups of G (G dividing K) is
its per-channel fake quantize of the [N * K / G, G] view: the same rounding, one scale per group.

Run with Debian's interpreter: /usr/bin/python3 tests/golden/make_low_bit_golden.py
Writes tests/golden/low_bit_golden.safetensors, read by tests/test_low_bit.cpp. Fixed seed, so a rerun
reproduces the file byte for byte.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from safetensors_writer import save  # noqa: E402

torch.manual_seed(0)
out = {}
eps = torch.finfo(torch.float32).eps

# 4-bit symmetric weights [-7, 7], [N=5, K=96] in groups of 32 (scale amax / 7 per group, with some
# groups scaled down 0.7 so values clip).
N, K, G, qmax = 5, 96, 32, 7
w = torch.randn(N, K) * torch.linspace(0.05, 2.0, N).unsqueeze(1)
wg = w.reshape(-1, G)
scale = (wg.abs().amax(1) / qmax).clamp(min=eps)
scale[::3] *= 0.7
zp = torch.zeros(scale.numel(), dtype=torch.int32)
wr = wg.clone().requires_grad_(True)
y = torch.fake_quantize_per_channel_affine(wr, scale, zp, 0, -qmax, qmax)
g = torch.randn_like(y)
y.backward(g)
out.update({"grp.x": w, "grp.scale": scale.reshape(N, K // G), "grp.y": y.detach().reshape(N, K),
            "grp.g": g.reshape(N, K), "grp.dx": wr.grad.reshape(N, K)})

# Per-token uint8 affine activations [R=7, K=40]: qparams of each row's min / max as PyTorch's
# per-channel MinMax observer computes them, then per-channel (axis 0) fake quantization.
x = torch.randn(7, 40) * torch.linspace(0.1, 4.0, 7).unsqueeze(1) + torch.linspace(-1, 2, 7).unsqueeze(1)
obs = torch.ao.quantization.PerChannelMinMaxObserver(ch_axis=0, dtype=torch.quint8,
                                                     qscheme=torch.per_channel_affine)
obs(x)
ts, tz = obs.calculate_qparams()
xr = x.clone().requires_grad_(True)
ty = torch.fake_quantize_per_channel_affine(xr, ts.float(), tz.to(torch.int32), 0, 0, 255)
tg = torch.randn_like(ty)
ty.backward(tg)
out.update({"tok.x": x, "tok.scale": ts.float(), "tok.zero_point": tz.to(torch.int32), "tok.y": ty.detach(),
            "tok.g": tg, "tok.dx": xr.grad})

# LSQ per group: the learnable per-channel fake quantize of the [N * K / G, G] view, grad factor
# 1 / sqrt(G * qmax) (the elements one scale covers).
ls = (wg.abs().mean(1) * 2 / qmax ** 0.5).detach().requires_grad_(True)
lw = wg.clone().requires_grad_(True)
gf = 1.0 / (G * qmax) ** 0.5
ly = torch._fake_quantize_learnable_per_channel_affine(lw, ls, torch.zeros(ls.numel()), 0, -qmax, qmax, gf)
lg = torch.randn_like(ly)
ly.backward(lg)
out.update({"lsq.scale": ls.detach().reshape(N, K // G), "lsq.y": ly.detach().reshape(N, K),
            "lsq.g": lg.reshape(N, K), "lsq.dx": lw.grad.reshape(N, K), "lsq.dscale": ls.grad.reshape(N, K // G)})

save(os.path.join(os.path.dirname(__file__), "low_bit_golden.safetensors"), out,
     {"torch": torch.__version__, "script": "tests/golden/make_low_bit_golden.py"})
print("wrote", len(out), "tensors")
