"""Golden forward/backward of a small reference ViT for tests/test_layers_forward.cpp.
Run from the repository root with Debian's interpreter:
  /usr/bin/python3 tests/golden/make_vit_golden.py
Writes tests/golden/vit_golden.safetensors (tests/golden/safetensors_writer.py; fixed seed, so a rerun
reproduces it byte for byte):
  sd.<key>        the state_dict (PyTorch init, seed 0)
  images, labels  a batch of 2 random images [2, 3, 8, 8] and int labels
  logits, loss    forward output and mean cross-entropy
  grad.<key>      d loss / d parameter for every parameter
  probs.1         attention probabilities of blocks.1.attn [2, 2, 5, 5]
  mask.*          a key-padding-masked attention call of blocks.0.attn (x, mask u8, out)
"""
import os, sys
import torch, torch.nn.functional as F

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import vit_reference
from safetensors_writer import save  # noqa: E402

CFG = dict(img=8, patch=4, chans=3, dim=16, depth=2, heads=2, hidden=32, classes=3)
torch.manual_seed(0)
m = vit_reference.ViT(**CFG)
images = torch.randn(2, CFG["chans"], CFG["img"], CFG["img"])
labels = torch.tensor([1, 2], dtype=torch.int32)

captured = {}
def grab_probs(mod, inp, out):
    (x,) = inp
    b, n, d = x.shape
    q, k, v = mod.qkv(x).reshape(b, n, 3, mod.heads, d // mod.heads).permute(2, 0, 3, 1, 4)
    captured["probs"] = ((q @ k.transpose(-2, -1)) * mod.scale).softmax(-1).detach()
h = m.blocks[1].attn.register_forward_hook(grab_probs)

logits = m(images)
loss = F.cross_entropy(logits, labels.long())
loss.backward()
h.remove()

# Masked attention, written out from the reference Attention plus masked_fill on the keys.
attn = m.blocks[0].attn
x = torch.randn(2, 5, CFG["dim"])
mask = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.int32)
with torch.no_grad():
    b, n, d = x.shape
    q, k, v = attn.qkv(x).reshape(b, n, 3, attn.heads, d // attn.heads).permute(2, 0, 3, 1, 4)
    s = (q @ k.transpose(-2, -1)) * attn.scale
    s = s.masked_fill(mask.bool()[:, None, None, :], float("-inf"))
    masked_out = attn.proj((s.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d))

out = [(f"sd.{k}", v) for k, v in m.state_dict().items()]
out += [("images", images), ("labels", labels), ("logits", logits), ("loss", loss.reshape(1))]
out += [(f"grad.{k}", p.grad) for k, p in m.named_parameters()]
out += [("probs.1", captured["probs"]), ("mask.x", x), ("mask.mask", mask), ("mask.out", masked_out)]
names = [k for k, _ in out]
assert len(set(names)) == len(names)
save(os.path.join(here, "vit_golden.safetensors"), dict(out),
     {"torch": torch.__version__, "script": "tests/golden/make_vit_golden.py", "config": CFG})
