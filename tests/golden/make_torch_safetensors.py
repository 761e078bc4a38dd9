#!/usr/bin/python3
"""Writes tests/golden/torch_layout.safetensors exactly as the Hugging Face `safetensors` package lays
files out (safetensors_writer.save with layout="hf"), with the dtypes PyTorch checkpoints carry that quench
converts on load (F16, BF16, F64, I64, BOOL), for tests/test_safetensors.cpp. Deterministic (no random
values), so a rerun reproduces the file byte for byte. Run from anywhere with Debian's interpreter:
    /usr/bin/python3 tests/golden/make_torch_safetensors.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_writer import save  # noqa: E402

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
save(os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_layout.safetensors"), tensors,
     {"format": "pt", "note": "golden"}, layout="hf")
