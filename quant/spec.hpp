// What a quantized tensor looks like: bit width, signedness, symmetric or affine, per tensor or per
// channel. The defaults are the project's scheme: weights int8 symmetric per output channel,
// activations uint8 affine per tensor over the full 0..255 range (our int8 kernels are exact, so no
// reduced range is needed).
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

  static QuantSpec uint8_affine_per_tensor();      // activations
  static QuantSpec int8_symmetric_per_channel(int64_t axis = 0);  // weights, [-127, 127]
  static QuantSpec int8_symmetric_per_tensor();    // weights, per tensor
  // A spec with the full range of `bits` for its signedness.
  static QuantSpec make(int bits, bool is_signed, bool symmetric, bool per_channel, int64_t axis = 0);

  QScheme qscheme() const;
  std::string str() const;  // e.g. "uint8 affine per-tensor [0, 255]"
  void validate() const;    // throws quench::Error on an impossible spec
};

bool operator==(const QuantSpec& a, const QuantSpec& b);

}  // namespace quench::quant
