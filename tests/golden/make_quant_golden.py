"""Golden values for quant/: PyTorch's fake quantization (forward, STE backward) and LSQ scale gradients.

Run from anywhere with Debian's interpreter: /usr/bin/python3 tests/golden/make_quant_golden.py
Writes tests/golden/quant_golden.safetensors (tests/golden/safetensors_writer.py), read by
tests/test_quant.cpp. Fixed seed, so a rerun reproduces the file byte for byte.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from safetensors_writer import save  # noqa: E402

torch.manual_seed(0)
out = {}

# Per-tensor uint8 affine fake quantization, values spread over and beyond the range, plus exact ties.
x = torch.cat([torch.randn(200) * 3, torch.tensor([0.25, 0.75, -0.25, 1.25, 100.0, -100.0])])
scale, zp = 0.05, 37
x.requires_grad_(True)
y = torch.fake_quantize_per_tensor_affine(x, scale, zp, 0, 255)
g = torch.randn_like(y)
y.backward(g)
out.update({"pt.x": x.detach(), "pt.y": y.detach(), "pt.g": g, "pt.dx": x.grad,
            "pt.scale": torch.tensor(scale), "pt.zero_point": torch.tensor(zp, dtype=torch.int32)})

# Per-channel int8 symmetric weights [C=6, 10] along axis 0.
w = torch.randn(6, 10) * torch.tensor([0.1, 1, 5, 0.01, 2, 0.5]).unsqueeze(1)
amax = w.abs().amax(1)
wscale = (amax / 127.0).clamp(min=torch.finfo(torch.float32).eps)
wzp = torch.zeros(6, dtype=torch.int32)
w.requires_grad_(True)
wy = torch.fake_quantize_per_channel_affine(w, wscale * 0.8, wzp, 0, -127, 127)  # 0.8: some clipping
wg = torch.randn_like(wy)
wy.backward(wg)
out.update({"pc.x": w.detach(), "pc.y": wy.detach(), "pc.g": wg, "pc.dx": w.grad,
            "pc.scale": wscale * 0.8, "pc.zero_point": wzp})

# LSQ: learnable per-tensor scale, uint8 affine; grad_factor 1/sqrt(numel*qmax).
lx = torch.randn(64) * 2
lx.requires_grad_(True)
ls = torch.tensor([0.03], requires_grad=True)
lz = torch.tensor([100.0])
gf = 1.0 / (64 * 255) ** 0.5
ly = torch._fake_quantize_learnable_per_tensor_affine(lx, ls, lz, 0, 255, gf)
lg = torch.randn_like(ly)
ly.backward(lg)
out.update({"lsq.x": lx.detach(), "lsq.y": ly.detach(), "lsq.g": lg, "lsq.dx": lx.grad,
            "lsq.scale": ls.detach(), "lsq.dscale": ls.grad, "lsq.zero_point": lz.to(torch.int32),
            "lsq.grad_factor": torch.tensor(gf)})

# Observers: MinMax and MovingAverage (c = 0.01) qparams over three batches.
mm = torch.ao.quantization.MinMaxObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine)
ma = torch.ao.quantization.MovingAverageMinMaxObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine)
pcw = torch.ao.quantization.PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8,
                                                     qscheme=torch.per_channel_symmetric,
                                                     quant_min=-127, quant_max=127)
for i in range(3):
    b = torch.randn(4, 8) * (i + 1) + 0.5 * i
    out[f"obs.batch{i}"] = b
    mm(b)
    ma(b)
    pcw(b)
for name, o in (("minmax", mm), ("movavg", ma), ("perchannel", pcw)):
    s, z = o.calculate_qparams()
    out[f"obs.{name}.scale"] = s.float()
    out[f"obs.{name}.zero_point"] = z.to(torch.int32)
    out[f"obs.{name}.min_val"] = o.min_val
    out[f"obs.{name}.max_val"] = o.max_val

save(os.path.join(os.path.dirname(__file__), "quant_golden.safetensors"), out,
     {"torch": torch.__version__, "script": "tests/golden/make_quant_golden.py"})
print("wrote", len(out), "tensors")
