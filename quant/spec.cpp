#include "quant/spec.hpp"

#include "engine/error.hpp"

namespace quench::quant {

QuantSpec QuantSpec::make(int bits, bool is_signed, bool symmetric, bool per_channel, int64_t axis) {
  QuantSpec s;
  s.bits = bits;
  s.is_signed = is_signed;
  s.symmetric = symmetric;
  s.per_channel = per_channel;
  s.axis = axis;
  s.quant_min = is_signed ? -(int64_t{1} << (bits - 1)) : 0;
  s.quant_max = is_signed ? (int64_t{1} << (bits - 1)) - 1 : (int64_t{1} << bits) - 1;
  s.validate();
  return s;
}

QuantSpec QuantSpec::uint8_affine_per_tensor() { return make(8, false, false, false); }

// [-127, 127]: a symmetric grid whose negation stays representable (as PyTorch's qint8 weights
// with quant_min=-127 in the default QAT qconfig of the x86/onednn backend).
QuantSpec QuantSpec::int8_symmetric_per_channel(int64_t axis) {
  QuantSpec s = make(8, true, true, true, axis);
  s.quant_min = -127;
  return s;
}

QuantSpec QuantSpec::int8_symmetric_per_tensor() {
  QuantSpec s = make(8, true, true, false);
  s.quant_min = -127;
  return s;
}

QuantSpec QuantSpec::int_symmetric_weight(int bits, int64_t group_size) {
  QUENCH_CHECK(bits >= 2 && bits <= 8, "QuantSpec::int_symmetric_weight: bits must be in [2, 8], got ", bits);
  QuantSpec s = make(bits, true, true, true, 0);
  s.quant_min = -s.quant_max;
  s.group_size = group_size;
  s.validate();
  return s;
}

QuantSpec QuantSpec::uint8_affine_per_token() {
  QuantSpec s = make(8, false, false, false);
  s.per_token = true;
  return s;
}

QScheme QuantSpec::qscheme() const {
  if (per_channel) return symmetric ? QScheme::per_channel_symmetric : QScheme::per_channel_affine;
  return symmetric ? QScheme::per_tensor_symmetric : QScheme::per_tensor_affine;
}

std::string QuantSpec::str() const {
  std::string s = (is_signed ? "int" : "uint") + std::to_string(bits);
  s += symmetric ? " symmetric" : " affine";
  s += per_channel ? " per-channel(axis " + std::to_string(axis) + ")" : per_token ? " per-token" : " per-tensor";
  if (group_size > 0) s += " group " + std::to_string(group_size);
  s += " [" + std::to_string(quant_min) + ", " + std::to_string(quant_max) + "]";
  return s;
}

void QuantSpec::validate() const {
  QUENCH_CHECK(bits >= 2 && bits <= 16, "QuantSpec: bits must be in [2, 16], got ", bits);
  QUENCH_CHECK(quant_min < quant_max, "QuantSpec: quant_min (", quant_min, ") must be below quant_max (",
               quant_max, ")");
  int64_t lo = is_signed ? -(int64_t{1} << (bits - 1)) : 0;
  int64_t hi = is_signed ? (int64_t{1} << (bits - 1)) - 1 : (int64_t{1} << bits) - 1;
  QUENCH_CHECK(quant_min >= lo && quant_max <= hi, "QuantSpec: range [", quant_min, ", ", quant_max,
               "] does not fit ", is_signed ? "signed " : "unsigned ", bits, " bits [", lo, ", ", hi, "]");
  QUENCH_CHECK(group_size >= 0, "QuantSpec: group_size must be >= 0 (0: per channel), got ", group_size);
  QUENCH_CHECK(group_size == 0 || (per_channel && axis == 0), "QuantSpec: group_size ", group_size,
               " needs a per-channel spec on axis 0 (groups run along each output channel's K), got ",
               per_channel ? "axis " + std::to_string(axis) : std::string("per tensor"));
  QUENCH_CHECK(!per_token || !per_channel, "QuantSpec: per-token quantization is per row of the last dim; it "
               "cannot also be per channel");
}

bool operator==(const QuantSpec& a, const QuantSpec& b) {
  return a.bits == b.bits && a.is_signed == b.is_signed && a.symmetric == b.symmetric &&
         a.per_channel == b.per_channel && (!a.per_channel || a.axis == b.axis) &&
         a.quant_min == b.quant_min && a.quant_max == b.quant_max && a.group_size == b.group_size &&
         a.per_token == b.per_token;
}

}  // namespace quench::quant
