"""Golden values for tests/test_optim.cpp: a few steps of PyTorch SGD and AdamW on fixed parameters
and gradients, and clip_grad_norm_. Run from the repository root with Debian's interpreter:
  /usr/bin/python3 tests/golden/make_optim_golden.py
Writes tests/golden/optim_golden.safetensors (tests/golden/safetensors_writer.py); fixed seed, so a
rerun reproduces the file byte for byte.
Every optimizer uses foreach=False (the _single_tensor_* code path the C++ mirrors).
"""
import os, sys
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_writer import save  # noqa: E402

STEPS = 4
torch.manual_seed(7)
P0 = [torch.randn(3, 4), torch.randn(5)]
GRADS = [[torch.randn(3, 4), torch.randn(5)] for _ in range(STEPS)]

# name -> (factory(params) -> optimizer); groups are given as lists of dicts.
CASES = {
    "sgd_plain": lambda p: torch.optim.SGD(p, lr=0.1, foreach=False),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01,
                                              foreach=False),
    "sgd_nesterov": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05,
                                              foreach=False),
    "adamw_default": lambda p: torch.optim.AdamW(p, foreach=False),
    "adamw_custom": lambda p: torch.optim.AdamW(p, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1,
                                                foreach=False),
    # Two groups: decay on the matrix, none and a different lr on the vector.
    "adamw_groups": lambda p: torch.optim.AdamW([{"params": [p[0]], "weight_decay": 0.1},
                                                 {"params": [p[1]], "weight_decay": 0.0, "lr": 0.02}],
                                                lr=0.01, foreach=False),
}

out = [("init.0", P0[0]), ("init.1", P0[1])]
for s in range(STEPS):
    out += [(f"grad.{s}.0", GRADS[s][0]), (f"grad.{s}.1", GRADS[s][1])]
for name, make in CASES.items():
    params = [t.clone().requires_grad_() for t in P0]
    opt = make(params)
    for s in range(STEPS):
        for p, g in zip(params, GRADS[s]):
            p.grad = g.clone()
        opt.step()
        for i, p in enumerate(params):
            out.append((f"{name}.step{s}.{i}", p.detach().clone()))
    for i, p in enumerate(params):
        for k, v in opt.state[p].items():
            if torch.is_tensor(v) and v.dim() > 0:
                out.append((f"{name}.state.{i}.{k}", v.clone()))

# clip_grad_norm_: one case that clips, one that does not.
for tag, max_norm in (("clip", 1.0), ("noclip", 100.0)):
    params = [t.clone().requires_grad_() for t in P0]
    for p, g in zip(params, GRADS[0]):
        p.grad = g.clone()
    total = torch.nn.utils.clip_grad_norm_(params, max_norm)
    out.append((f"{tag}.total", total.reshape(1)))
    for i, p in enumerate(params):
        out.append((f"{tag}.grad.{i}", p.grad))

names = [k for k, _ in out]
assert len(set(names)) == len(names)
save(os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim_golden.safetensors"), dict(out),
     {"torch": torch.__version__, "script": "tests/golden/make_optim_golden.py"})
