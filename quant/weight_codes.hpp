// Quantized weight tables as checkpoints store them (quant/int8_io.hpp): their scales, and packed
// signed 4-bit codes, two per byte:
// byte j of a row of `cols` codes holds code 2j in its low nibble and code 2j + 1 in its high one,
// two's complement; the padding nibble of an odd `cols` is 0. Rows are ceil(cols / 2) bytes.
// Shared by Int4Linear (weights [out, in]) and QuantizedEmbedding (tables [num, dim]).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace quench::quant {

inline int64_t int4_row_bytes(int64_t cols) { return (cols + 1) / 2; }

// Code k of a packed row.
inline int8_t int4_code(const uint8_t* row, int64_t k) {
  const int v = (k % 2 ? row[k / 2] >> 4 : row[k / 2]) & 15;
  return static_cast<int8_t>(v >= 8 ? v - 16 : v);
}

// codes [rows, cols] (values in [-8, 7]) -> out [rows, int4_row_bytes(cols)].
void pack_int4_rows(const int8_t* codes, int64_t rows, int64_t cols, uint8_t* out);
// The inverse: [rows, cols] codes.
std::vector<int8_t> unpack_int4_rows(const uint8_t* packed, int64_t rows, int64_t cols);
// Throws naming `where`, the entry [row, col] and the range when a code of [rows, cols] lies outside
// [-qmax, qmax].
void check_codes(const int8_t* codes, int64_t rows, int64_t cols, int64_t qmax, int bits, const std::string& where);
// The same for packed rows, and when the padding nibble of an odd `cols` is not 0.
void check_int4_rows(const uint8_t* packed, int64_t rows, int64_t cols, int64_t qmax, int bits,
                     const std::string& where);
// Throws naming `where` and the entry [row, group] unless every scale of [rows, groups] is positive
// and finite.
void check_weight_scales(const float* scales, int64_t rows, int64_t groups, const std::string& where);

}  // namespace quench::quant
