"""The one writer of tests/golden/*.safetensors (the `safetensors` package is not in Debian, so this uses
the standard library and torch only). The C++ tests read the files with nn::load_safetensors.

save(path, tensors, metadata)   quench's layout (what nn::save_safetensors writes): keys sorted, data in
                                key order, __metadata__ last, compact JSON space-padded to 8 bytes.
save(..., layout="hf")          the Hugging Face serializer's layout: data sorted by dtype (descending
                                enum order) then name, header keys in data order with __metadata__ first.
text(s)                         a string as a U8 tensor (for ordered key lists and other text).

Metadata values are stored as str(value). Only dtypes quench loads are accepted; anything else (e.g. an
int64 index tensor the script forgot to convert) raises, so a golden file never depends on a lossy cast.
"""
import json
import struct

import torch

_DTYPES = {torch.float32: "F32", torch.int32: "I32", torch.int8: "I8", torch.uint8: "U8",
           torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64", torch.int64: "I64",
           torch.int16: "I16", torch.bool: "BOOL"}
# quench's native dtypes; the others only appear in files that test the loader's conversions.
_NATIVE = {torch.float32, torch.int32, torch.int8, torch.uint8}
# Order of the Rust `Dtype` enum; the Hugging Face serializer sorts by it, largest first.
_RUST_DTYPE_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32",
                     "U32", "F32", "F64", "I64", "U64"]


def text(s):
    """A string as a 1-D uint8 tensor of its UTF-8 bytes."""
    return torch.tensor(list(s.encode("utf-8")), dtype=torch.uint8)


def _bytes(t):
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def save(path, tensors, metadata=None, layout="quench"):
    """Writes {name: tensor} and {key: value} metadata to path; see the module docstring for layouts."""
    items = []
    for name in sorted(tensors):
        t = tensors[name].detach().cpu()
        if t.dtype not in _DTYPES or (layout == "quench" and t.dtype not in _NATIVE):
            raise TypeError(f"{path}: tensor {name} has dtype {t.dtype}; convert it to float32/int32")
        items.append((name, t))
    header, blobs, offset = {}, [], 0
    if layout == "hf":
        items.sort(key=lambda kv: _RUST_DTYPE_ORDER.index(_DTYPES[kv[1].dtype]), reverse=True)
        if metadata:
            header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    elif layout != "quench":
        raise ValueError(f"unknown layout {layout!r}")
    for name, t in items:
        data = _bytes(t)
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata and layout == "quench":
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)
