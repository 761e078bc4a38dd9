"""Reference ViT for Fashion-MNIST in PyTorch: the model the engine's ViT must match.

Parameter names and layouts follow the timm VisionTransformer convention, so a checkpoint
saved by one side loads in the other:
  patch_embed.proj.weight [D, C, P, P], patch_embed.proj.bias [D]
  cls_token [1, 1, D], pos_embed [1, N + 1, D]
  blocks.{i}.norm1.{weight,bias} [D]
  blocks.{i}.attn.qkv.{weight [3D, D], bias [3D]}   rows ordered q, k, v; head h uses rows h*hd .. (h+1)*hd-1 of each
  blocks.{i}.attn.proj.{weight [D, D], bias [D]}
  blocks.{i}.norm2.{weight,bias} [D]
  blocks.{i}.mlp.fc1.{weight [M, D], bias [M]}, blocks.{i}.mlp.fc2.{weight [D, M], bias [D]}
  norm.{weight,bias} [D], head.{weight [classes, D], bias [classes]}
Semantics: pre-norm blocks, LayerNorm eps 1e-6, exact (erf) GELU, attention scale hd**-0.5,
classification from the CLS token. Input: pixels / 255, then (x - 0.2860) / 0.3530.

Run with Debian's interpreter, which has python3-torch:
  /usr/bin/python3 tests/golden/vit_reference.py --threads 2   time train step and inference
(Install libopenblas0-openmp first: without it Debian's torch uses the reference BLAS and is ~10x slower.)
"""
import argparse, time
import torch, torch.nn as nn, torch.nn.functional as F

MEAN, STD = 0.2860, 0.3530


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        probs = ((q @ k.transpose(-2, -1)) * self.scale).softmax(-1)
        return self.proj((probs @ v).transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-6), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=1e-6), Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch, chans, dim):
        super().__init__()
        self.proj = nn.Conv2d(chans, dim, patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class ViT(nn.Module):
    """Reference configuration: 28x28x1 images, patch 4 (49 tokens + CLS), D=128, 4 heads, MLP 512, 6 blocks."""

    def __init__(self, img=28, patch=4, chans=1, dim=128, depth=6, heads=4, hidden=512, classes=10):
        super().__init__()
        self.patch_embed = PatchEmbed(patch, chans, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, (img // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, hidden) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, classes)

    def forward(self, img):
        x = self.patch_embed(img)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


def _bench(f, warm=3, secs=3.0):
    for _ in range(warm):
        f()
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < secs:
        f()
        n += 1
    return (time.perf_counter() - t0) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m, b = ViT(), a.batch
    x, y = torch.randn(b, 1, 28, 28), torch.randint(0, 10, (b,))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        F.cross_entropy(m(x), y).backward()
        opt.step()

    t = _bench(step)
    print(f"torch threads={a.threads} batch={b} params={sum(p.numel() for p in m.parameters())}")
    print(f"train_step_ms={t * 1e3:.1f}")
    m.eval()
    with torch.no_grad():
        print(f"fp32_infer_ms={_bench(lambda: m(x)) * 1e3:.2f}")
        torch.backends.quantized.engine = "onednn"
        q = torch.ao.quantization.quantize_dynamic(m, {nn.Linear}, dtype=torch.qint8)
        print(f"int8_dynamic_onednn_infer_ms={_bench(lambda: q(x)) * 1e3:.2f}")


if __name__ == "__main__":
    main()
