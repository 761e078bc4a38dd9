"""State-dict keys and shapes, and module names, of the reference ViT (default config) as PyTorch
builds them, for tests/test_layers_forward.cpp. Run from anywhere with Debian's interpreter:
  /usr/bin/python3 tests/golden/make_vit_keys.py
Writes tests/golden/vit_reference_keys.safetensors (tests/golden/safetensors_writer.py) holding two
U8 tensors of UTF-8 text, one entry per line, in PyTorch's order (safetensors sorts names, so the order
lives inside the text):
  params   "<name> <d0> <d1> ..."   state_dict order, which here equals named_parameters order
  modules  "<name> <ClassName>"     named_modules order, root omitted
No randomness reaches the file, so a rerun reproduces it byte for byte.
"""
import os
import sys

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import vit_reference  # noqa: E402
from safetensors_writer import save, text  # noqa: E402

m = vit_reference.ViT()
assert [k for k, _ in m.named_parameters()] == list(m.state_dict().keys())
params = "".join(f"{k} {' '.join(str(d) for d in v.shape)}\n" for k, v in m.state_dict().items())
modules = "".join(f"{k} {type(mod).__name__}\n" for k, mod in m.named_modules() if k)
save(os.path.join(here, "vit_reference_keys.safetensors"), {"params": text(params), "modules": text(modules)},
     {"torch": torch.__version__, "script": "tests/golden/make_vit_keys.py",
      "source": "vit_reference.ViT() (default config)"})
