#!/usr/bin/env python3
"""Writes torch_layout.safetensors exactly as the Hugging Face `safetensors` package lays files out
(it is not installed here, so this mirrors its Rust serializer with the stdlib and torch only):
data sorted by dtype (descending enum order) then name, header keys in data order with __metadata__
first, compact JSON, header space-padded to a multiple of 8. Rerun to regenerate:
    /usr/bin/python3 tests/golden/make_torch_safetensors.py
"""
import json
import os
import struct

import torch

# Order of the Rust `Dtype` enum; the serializer sorts by it, largest first.
RUST_DTYPE_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32",
                    "U32", "F32", "F64", "I64", "U64"]
NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
         torch.int32: "I32", torch.int8: "I8", torch.uint8: "U8", torch.float64: "F64",
         torch.bool: "BOOL", torch.int16: "I16"}


def save(tensors, metadata, path):
    items = sorted(tensors.items(), key=lambda kv: kv[0])
    items.sort(key=lambda kv: RUST_DTYPE_ORDER.index(NAMES[kv[1].dtype]), reverse=True)
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in items:
        data = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


tensors = {
    "encoder.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3) / 4 - 0.5,
    "encoder.bias_half": torch.tensor([1.5, -2.0, 65504.0, 2.0 ** -24], dtype=torch.float16),
    "embed.bf16": torch.tensor([1.0, -3.140625, 256.0], dtype=torch.bfloat16),
    "embed.position_ids": torch.arange(5, dtype=torch.int64).unsqueeze(0),
    "bn.num_batches_tracked": torch.tensor(7, dtype=torch.int64),
    "q.weight": torch.tensor([-128, 0, 127], dtype=torch.int8),
    "q.zero_point": torch.tensor([0, 255], dtype=torch.uint8),
    "q.index": torch.tensor([[1, -2], [3, 2147483647]], dtype=torch.int32),
    "q.empty": torch.zeros(0, 3),
    "mask": torch.tensor([True, False, True]),
    "scale64": torch.tensor([0.1, -2.5], dtype=torch.float64),
}
save(tensors, {"format": "pt", "note": "golden"},
     os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_layout.safetensors"))
