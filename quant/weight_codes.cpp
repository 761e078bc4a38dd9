#include "quant/weight_codes.hpp"

#include <cmath>
#include <cstring>

#include "engine/error.hpp"

namespace quench::quant {

void pack_int4_rows(const int8_t* codes, int64_t rows, int64_t cols, uint8_t* out) {
  const int64_t rb = int4_row_bytes(cols);
  std::memset(out, 0, static_cast<size_t>(rows * rb));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < cols; ++k)
      out[r * rb + k / 2] |= static_cast<uint8_t>((codes[r * cols + k] & 15) << (4 * (k % 2)));
}

std::vector<int8_t> unpack_int4_rows(const uint8_t* packed, int64_t rows, int64_t cols) {
  const int64_t rb = int4_row_bytes(cols);
  std::vector<int8_t> c(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < cols; ++k) c[r * cols + k] = int4_code(packed + r * rb, k);
  return c;
}

void check_codes(const int8_t* codes, int64_t rows, int64_t cols, int64_t qmax, int bits, const std::string& where) {
  for (int64_t i = 0; i < rows * cols; ++i)
    QUENCH_CHECK(codes[i] >= -qmax && codes[i] <= qmax, where, ": weight code [", i / cols, ", ", i % cols, "] = ",
                 int(codes[i]), " is outside the symmetric ", bits, "-bit range [", -qmax, ", ", qmax, "]");
}

void check_int4_rows(const uint8_t* packed, int64_t rows, int64_t cols, int64_t qmax, int bits,
                     const std::string& where) {
  check_codes(unpack_int4_rows(packed, rows, cols).data(), rows, cols, qmax, bits, where);
  const int64_t rb = int4_row_bytes(cols);
  for (int64_t r = 0; r < rows; ++r)
    QUENCH_CHECK(cols % 2 == 0 || (packed[r * rb + rb - 1] >> 4) == 0, where, ": row ", r,
                 " has a non-zero padding nibble (", cols, " codes per row is odd: the last high nibble must be 0)");
}

void check_weight_scales(const float* s, int64_t rows, int64_t groups, const std::string& where) {
  for (int64_t i = 0; i < rows * groups; ++i)
    QUENCH_CHECK(std::isfinite(s[i]) && s[i] > 0, where, ": weight_scale[", i / groups, ", ", i % groups,
                 "] must be positive and finite, got ", s[i]);
}

}  // namespace quench::quant
