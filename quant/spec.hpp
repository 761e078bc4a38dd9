// What a quantized tensor looks like: bit width, signedness, symmetric or affine, per tensor, per
// channel, per group of a channel or (activations) per token. The defaults are the project's scheme:
// weights int8 symmetric per output channel, activations uint8 affine per tensor over the full 0..255
// range (our int8 kernels are exact, so no reduced range is needed).
#pragma once
#include <cstdint>
#include <string>

namespace quench::quant {

enum class QScheme { per_tensor_affine, per_tensor_symmetric, per_channel_affine, per_channel_symmetric };

struct QuantSpec {
  int bits = 8;
  bool is_signed = false;
  bool symmetric = false;
  bool per_channel = false;
  int64_t axis = 0;         // the channel dim when per_channel
  int64_t quant_min = 0;    // explicit range; defaults follow bits and signedness
  int64_t quant_max = 255;
  // Per channel (axis 0) only: each channel's elements (the last dims, K of a [N, K] weight) are cut
  // into runs of group_size consecutive elements with a scale each (the last run shorter when
  // group_size does not divide K): scales [C, ceil(K / group_size)]. 0: one scale per channel.
  int64_t group_size = 0;
  // Per tensor only: dynamic per-token quantization. Every row of the last dim gets its own scale and
  // zero point from its own min / max at each forward (the observer's formula), nothing is observed
  // or stored.
  bool per_token = false;

  static QuantSpec uint8_affine_per_tensor();      // activations
  static QuantSpec int8_symmetric_per_channel(int64_t axis = 0);  // weights, [-127, 127]
  static QuantSpec int8_symmetric_per_tensor();    // weights, per tensor
  // Low-bit weights: signed symmetric per output channel over [-(2^(bits-1) - 1), 2^(bits-1) - 1]
  // (bits = 4: [-7, 7]), optionally per group of group_size along K. bits = 8, group_size = 0 is
  // int8_symmetric_per_channel(0).
  static QuantSpec int_symmetric_weight(int bits, int64_t group_size = 0);
  // Activations quantized dynamically per token (row of the last dim), uint8 affine over [0, 255].
  static QuantSpec uint8_affine_per_token();
  // A spec with the full range of `bits` for its signedness.
  static QuantSpec make(int bits, bool is_signed, bool symmetric, bool per_channel, int64_t axis = 0);

  QScheme qscheme() const;
  // e.g. "uint8 affine per-tensor [0, 255]", "int4 symmetric per-channel(axis 0) group 64 [-7, 7]"
  std::string str() const;
  void validate() const;    // throws quench::Error on an impossible spec
  // Scales per channel: ceil(elements / group_size) when grouped, else 1.
  int64_t groups_per_channel(int64_t elements) const {
    return group_size > 0 ? (elements + group_size - 1) / group_size : 1;
  }
};

bool operator==(const QuantSpec& a, const QuantSpec& b);

}  // namespace quench::quant
