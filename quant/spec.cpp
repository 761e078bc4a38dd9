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

QScheme QuantSpec::qscheme() const {
  if (per_channel) return symmetric ? QScheme::per_channel_symmetric : QScheme::per_channel_affine;
  return symmetric ? QScheme::per_tensor_symmetric : QScheme::per_tensor_affine;
}

std::string QuantSpec::str() const {
  std::string s = (is_signed ? "int" : "uint") + std::to_string(bits);
  s += symmetric ? " symmetric" : " affine";
  s += per_channel ? " per-channel(axis " + std::to_string(axis) + ")" : " per-tensor";
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
}

bool operator==(const QuantSpec& a, const QuantSpec& b) {
  return a.bits == b.bits && a.is_signed == b.is_signed && a.symmetric == b.symmetric &&
         a.per_channel == b.per_channel && (!a.per_channel || a.axis == b.axis) &&
         a.quant_min == b.quant_min && a.quant_max == b.quant_max;
}

}  // namespace quench::quant
