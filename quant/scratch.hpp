// Grow-only per-thread scratch for the fused int8 paths (Int8Mlp, Int8Block, int8_attention, the QAT
// attention's products): a thread_local vector's buffer reused across row blocks and calls.
#pragma once
#include <cstdint>
#include <vector>

namespace quench::quant {

template <class T>
T* scratch(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

}  // namespace quench::quant
