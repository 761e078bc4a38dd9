#include "quant/int4_linear.hpp"

#include <cmath>
#include <cstring>

#include "engine/autograd.hpp"
#include "engine/ops/creation.hpp"
#include "kernels/fake_quant_rows.hpp"
#include "kernels/parallel.hpp"
#include "quant/weight_codes.hpp"
#include "quant/observer.hpp"

namespace quench::quant {

Int4Linear::Int4Linear(int64_t in, int64_t out, bool has_bias, int64_t group, bool tok, int b)
    : QuantizedLinear("Int4Linear", in, out, 0, 255), group_size(group), per_token(tok), bits(b) {
  QUENCH_CHECK(group == 0 || (group % 8 == 0 && group >= 8 && group <= 65536), "Int4Linear: group_size must be 0 "
               "(per channel) or a multiple of 8 in [8, 65536] (the s4 GEMM's groups), got ", group);
  QUENCH_CHECK(b >= 2 && b <= 4, "Int4Linear: weights of 2..4 bits, got ", b, " (use Int8Linear for 5..8)");
  groups = group ? (in + group - 1) / group : 1;
  weight = register_buffer("weight", zeros({out, (in + 1) / 2}, kUInt8));
  weight_scale = register_buffer("weight_scale", ones({out, groups}));
  if (has_bias) bias = register_buffer("bias", zeros({out}));
  if (!tok) {
    input_scale = register_buffer("input_scale", ones({1}));
    input_zero_point = register_buffer("input_zero_point", zeros({1}, kInt32));
  }
}

std::string Int4Linear::extra_repr() const {
  return "in_features=" + std::to_string(in_features) + ", out_features=" + std::to_string(out_features) +
         ", bias=" + (bias.defined() ? "True" : "False") + ", bits=" + std::to_string(bits) +
         ", group_size=" + std::to_string(group_size) + ", activations=" + (per_token ? "per-token" : "per-tensor");
}

void Int4Linear::set_weight_codes(const int8_t* codes) {
  pack_int4_rows(codes, out_features, in_features, weight.data_ptr<uint8_t>());
}

std::vector<int8_t> Int4Linear::weight_codes() const {
  return unpack_int4_rows(weight.data_ptr<uint8_t>(), out_features, in_features);
}

void Int4Linear::validate(const std::string& where) const {
  check_int4_rows(weight.data_ptr<uint8_t>(), out_features, in_features, (int64_t{1} << (bits - 1)) - 1, bits, where);
  check_weight_scales(weight_scale.data_ptr<float>(), out_features, groups, where);
  if (!per_token) {
    const float s = input_scale.data_ptr<float>()[0];
    const int32_t z = input_zero_point.data_ptr<int32_t>()[0];
    QUENCH_CHECK(std::isfinite(s) && s > 0, where, ": input_scale must be positive and finite, got ", s);
    QUENCH_CHECK(z >= 0 && z <= 255, where, ": input_zero_point ", z, " is outside the u8 range [0, 255]");
  }
}

const kernels::PackedWeightsU8S4& Int4Linear::packed() {
  std::lock_guard<std::mutex> lock(pack_mu_);
  const uint8_t* w = weight.data_ptr<uint8_t>();
  const size_t n = static_cast<size_t>(weight.numel());
  const bool stale = !packed_.buf || packed_.isa != kernels::active_isa() || packed_from_.size() != n ||
                     std::memcmp(packed_from_.data(), w, n) != 0;
  if (stale) {
    const std::vector<int8_t> codes = weight_codes();
    packed_ = kernels::pack_weights_u8s4(codes.data(), out_features, in_features, in_features, group_size,
                                         kernels::active_isa());
    packed_from_.assign(w, w + n);
  }
  return packed_;
}

namespace {

// The s4 GEMM's arguments for layer l over M rows of codes, the activation parameters left to the caller.
kernels::GemmU8S4Args gemm_args(const Int4Linear& l, const kernels::PackedWeightsU8S4& pw, const uint8_t* q,
                                int64_t M, float* y, int64_t ldy, const float* residual) {
  kernels::GemmU8S4Args a;
  a.M = M;
  a.A = q;
  a.lda = l.in_features;
  a.W = &pw;
  a.out = kernels::U8S4Output::f32;
  a.C = y;
  a.ldc = ldy;
  a.w_scale = l.weight_scale.data_ptr<float>();
  a.bias = l.bias.defined() ? l.bias.data_ptr<float>() : nullptr;
  a.residual = residual;
  a.ldr = ldy;
  return a;
}

void run_gemm(const kernels::GemmU8S4Args& a) {
  try {
    kernels::gemm_u8s4(a);
  } catch (const std::exception& e) {
    throw Error(std::string("Int4Linear: ") + e.what());
  }
}

}  // namespace

void Int4Linear::gemm_f32(const uint8_t* q, int64_t M, float* y, int64_t ldy, const float* residual) const {
  QUENCH_CHECK(!per_token, "Int4Linear::gemm_f32: per-token activations have no frozen grid (use forward)");
  kernels::GemmU8S4Args a = gemm_args(*this, packed_, q, M, y, ldy, residual);
  a.a_zero_point = input_zero_point.data_ptr<int32_t>()[0];
  a.a_scale = input_scale.data_ptr<float>()[0];
  run_gemm(a);
}

// Per token: every row's own scale and zero point, computed here (quant/observer.hpp's row_qparams).
void Int4Linear::forward_rows(const float* x, int64_t M, float* y, const float* residual) {
  if (!per_token) return QuantizedLinear::forward_rows(x, M, y, residual);
  const int64_t K = in_features;
  Tensor qa = Tensor::empty({M * K}, kUInt8);
  uint8_t* q = qa.data_ptr<uint8_t>();
  std::vector<float> row_scale(M);
  std::vector<int32_t> row_zp(M);
  const QuantSpec spec = QuantSpec::uint8_affine_per_token();
  kernels::parallel_for(M, std::max<int64_t>(1, 16384 / K), [&](int64_t b, int64_t e) {
    for (int64_t m = b; m < e; ++m) {
      row_qparams(x + m * K, K, spec, &row_scale[m], &row_zp[m]);
      kernels::fake_quant_row(x + m * K, K, row_scale[m], row_zp[m], 0, 255, nullptr, nullptr, nullptr, q + m * K);
    }
  });
  kernels::GemmU8S4Args a = gemm_args(*this, packed(), q, M, y, out_features, residual);
  a.a_zero_points = row_zp.data();
  a.a_scales = row_scale.data();
  run_gemm(a);
}

}  // namespace quench::quant
