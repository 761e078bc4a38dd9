#include "quant/int8_linear.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/autograd.hpp"
#include "engine/ops/creation.hpp"
#include "kernels/parallel.hpp"
#include "quant/qparams.hpp"

namespace quench::quant {

Int8Linear::Int8Linear(int64_t in, int64_t out, bool has_bias, int32_t qmin, int32_t qmax)
    : Module("Int8Linear"), in_features(in), out_features(out), input_qmin(qmin), input_qmax(qmax) {
  QUENCH_CHECK(in > 0 && out > 0 && in <= 65536, "Int8Linear: in_features must be in [1, 65536] and out_features "
               "positive, got ", in, " and ", out);
  QUENCH_CHECK(qmin >= 0 && qmax <= 255 && qmin < qmax, "Int8Linear: activations are u8: need 0 <= qmin < qmax <= "
               "255, got [", qmin, ", ", qmax, "]");
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

void Int8Linear::quantize_input(const float* x, int64_t M, int64_t ldx, uint8_t* q) const {
  const int64_t K = in_features;
  const float s = input_scale.data_ptr<float>()[0];
  const int32_t z = input_zero_point.data_ptr<int32_t>()[0];
  if (input_qmin == 0 && input_qmax == 255) {
    if (ldx == K) return kernels::quantize_row_u8(x, M * K, s, z, q);
    for (int64_t m = 0; m < M; ++m) kernels::quantize_row_u8(x + m * ldx, K, s, z, q + m * K);
    return;
  }
  const float inv = 1.0f / s;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k)
      q[m * K + k] = static_cast<uint8_t>(quantize_value(x[m * ldx + k], inv, z, input_qmin, input_qmax));
}

bool Int8Linear::same_input_grid(const Int8Linear& o) const {
  return input_qmin == o.input_qmin && input_qmax == o.input_qmax &&
         input_scale.data_ptr<float>()[0] == o.input_scale.data_ptr<float>()[0] &&
         input_zero_point.data_ptr<int32_t>()[0] == o.input_zero_point.data_ptr<int32_t>()[0];
}

int64_t fused_row_block(int64_t M) {
  const int64_t nt = get_num_threads();
  return std::min<int64_t>(128, ((M + nt - 1) / nt + 5) / 6 * 6);
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

void Int8Linear::gemm_f32(const kernels::PackedWeightsU8S8& pw, const uint8_t* q, int64_t M, float* y,
                          int64_t ldy, const float* residual) const {
  int8_gemm_f32(pw, q, false, input_zero_point.data_ptr<int32_t>()[0], input_scale.data_ptr<float>()[0],
                weight_scale.data_ptr<float>(), bias.defined() ? bias.data_ptr<float>() : nullptr, M, y, ldy,
                residual, "Int8Linear");
}

Tensor Int8Linear::forward(const Tensor& x) { return run(x, Tensor()); }

Tensor Int8Linear::forward_plus(const Tensor& x, const Tensor& residual) {
  QUENCH_CHECK(residual.defined(), "Int8Linear::forward_plus: the residual is undefined");
  return run(x, residual);
}

Tensor Int8Linear::run(const Tensor& x, const Tensor& residual) {
  check_dtype(x, kFloat32, "Int8Linear", "input");
  QUENCH_CHECK(x.dim() >= 1 && x.sizes().back() == in_features, "Int8Linear: input of shape ",
               shape_str(x.sizes()), " does not match in_features ", in_features);
  const int64_t K = in_features, N = out_features, M = x.numel() / K;
  Shape out_shape = x.sizes();
  out_shape.back() = N;
  Tensor r;
  if (residual.defined()) {
    check_dtype(residual, kFloat32, "Int8Linear", "residual");
    QUENCH_CHECK(residual.sizes() == out_shape, "Int8Linear: residual of shape ", shape_str(residual.sizes()),
                 " does not match the output ", shape_str(out_shape), " of input ", shape_str(x.sizes()));
    r = residual.detach().contiguous();
  }
  Tensor y = Tensor::empty(out_shape, kFloat32);
  if (M == 0) return y;
  Tensor xc = x.detach().contiguous();
  const float* px = xc.data_ptr<float>();
  // From the caching allocator: a fresh std::vector would be zero-filled (and page faulted) per call.
  Tensor qa = Tensor::empty({M * K}, kUInt8);
  uint8_t* pq = qa.data_ptr<uint8_t>();
  kernels::parallel_for(M, std::max<int64_t>(1, 16384 / K),
                        [&](int64_t b, int64_t e) { quantize_input(px + b * K, e - b, K, pq + b * K); });
  gemm_f32(packed(), pq, M, y.data_ptr<float>(), N, r.defined() ? r.data_ptr<float>() : nullptr);
  return y;
}

}  // namespace quench::quant
