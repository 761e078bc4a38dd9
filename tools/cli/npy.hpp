// NumPy .npy writer (format version 1.0), enough for float32 arrays such as logits.
//   magic "\x93NUMPY", version 1 0, u16 little-endian header length, then the header dict
//   "{'descr': '<f4', 'fortran_order': False, 'shape': (N, C), }" space-padded and ending in '\n' so
//   the data starts at a multiple of 64 bytes, then the elements row-major, little-endian.
#pragma once
#include <string>

#include "engine/tensor.hpp"

namespace quench::cli {

// The full header (magic through the trailing '\n') for a float32 C-order array of `shape`.
std::string npy_header_f32(const Shape& shape);

// Writes a float32 tensor of any shape (made contiguous) to `path`, atomically (a temporary file in the
// same directory, then rename). Errors (wrong dtype, unwritable path) throw quench::Error naming the path.
void write_npy(const std::string& path, const Tensor& t);

}  // namespace quench::cli
