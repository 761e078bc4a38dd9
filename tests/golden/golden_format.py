"""Writes tensors in the plain-text golden format that tests/golden_io.hpp reads.

One tensor per two lines:
  tensor <name> <f32|i32> <ndim> <d0> <d1> ...
  <values, row-major, space-separated; float32 written with 9 significant digits (exact round trip)>
Lines starting with '#' are comments.
"""
import torch


def write(path, tensors, comment=""):
    with open(path, "w") as f:
        for line in comment.strip().splitlines():
            f.write(f"# {line}\n")
        for name, t in tensors:
            t = t.detach().contiguous()
            if t.dtype in (torch.int32, torch.int64):
                kind, vals = "i32", " ".join(str(int(v)) for v in t.flatten().tolist())
            else:
                kind, vals = "f32", " ".join(f"{v:.9g}" for v in t.float().flatten().tolist())
            dims = " ".join(str(d) for d in t.shape)
            f.write(f"tensor {name} {kind} {t.dim()} {dims}".rstrip() + "\n" + vals + "\n")
