#include "quant/int8_linear.hpp"

#include <cmath>
#include <cstring>

#include "engine/ops/creation.hpp"

namespace quench::quant {

Int8Linear::Int8Linear(int64_t in, int64_t out, bool has_bias, int32_t qmin, int32_t qmax)
    : QuantizedLinear("Int8Linear", in, out, qmin, qmax) {
  weight = register_buffer("weight", zeros({out, in}, kInt8));
  weight_scale = register_buffer("weight_scale", ones({out}));
  if (has_bias) bias = register_buffer("bias", zeros({out}));
  input_scale = register_buffer("input_scale", ones({1}));
  input_zero_point = register_buffer("input_zero_point", zeros({1}, kInt32));
}

std::string Int8Linear::extra_repr() const {
  return "in_features=" + std::to_string(in_features) + ", out_features=" + std::to_string(out_features) +
         ", bias=" + (bias.defined() ? "True" : "False") + ", input_scale=" +
         std::to_string(input_scale.data_ptr<float>()[0]) +
         ", input_zero_point=" + std::to_string(input_zero_point.data_ptr<int32_t>()[0]);
}

void Int8Linear::validate(const std::string& where) const {
  const float s = input_scale.data_ptr<float>()[0];
  const int32_t z = input_zero_point.data_ptr<int32_t>()[0];
  QUENCH_CHECK(std::isfinite(s) && s > 0, where, ": input_scale must be positive and finite, got ", s);
  QUENCH_CHECK(z >= input_qmin && z <= input_qmax, where, ": input_zero_point ", z, " is outside the u8 range [",
               input_qmin, ", ", input_qmax, "]");
  const float* ws = weight_scale.data_ptr<float>();
  for (int64_t n = 0; n < out_features; ++n)
    QUENCH_CHECK(std::isfinite(ws[n]) && ws[n] > 0, where, ": weight_scale[", n,
                 "] must be positive and finite, got ", ws[n]);
}

const kernels::PackedWeightsU8S8& Int8Linear::packed() {
  std::lock_guard<std::mutex> lock(pack_mu_);
  const int8_t* w = weight.data_ptr<int8_t>();
  const size_t n = static_cast<size_t>(weight.numel());
  const bool stale = !packed_.buf || packed_.isa != kernels::active_isa() || packed_from_.size() != n ||
                     std::memcmp(packed_from_.data(), w, n) != 0;
  if (stale) {
    packed_ = kernels::pack_weights_u8s8(w, out_features, in_features, in_features, kernels::active_isa());
    packed_from_.assign(w, w + n);
  }
  return packed_;
}

void int8_gemm_f32(const kernels::PackedWeightsU8S8& pw, const void* q, bool q_signed, int32_t zero_point,
                   float x_scale, const float* w_scale, const float* bias, int64_t M, float* y, int64_t ldy,
                   const float* residual, const char* op) {
  kernels::GemmU8S8Args a;
  a.M = M;
  a.A = q;
  a.lda = pw.K;
  a.a_signed = q_signed;
  a.a_zero_point = zero_point;
  a.W = &pw;
  a.out = kernels::U8S8Output::f32;
  a.C = y;
  a.ldc = ldy;
  a.a_scale = x_scale;
  a.w_scale = w_scale;
  a.bias = bias;
  a.residual = residual;
  a.ldr = ldy;
  try {
    kernels::gemm_u8s8(a);
  } catch (const std::exception& e) {
    throw Error(std::string(op) + ": " + e.what());
  }
}

void Int8Linear::gemm_f32(const uint8_t* q, int64_t M, float* y, int64_t ldy, const float* residual) const {
  int8_gemm_f32(packed_, q, false, input_zero_point.data_ptr<int32_t>()[0], input_scale.data_ptr<float>()[0],
                weight_scale.data_ptr<float>(), bias.defined() ? bias.data_ptr<float>() : nullptr, M, y, ldy,
                residual, "Int8Linear");
}

}  // namespace quench::quant
