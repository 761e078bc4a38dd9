#include "quant/quantized_linear.hpp"

#include <algorithm>

#include "kernels/gemm_u8s8.hpp"  // quantize_row_u8
#include "kernels/parallel.hpp"
#include "quant/qparams.hpp"

namespace quench::quant {

int64_t fused_row_block(int64_t M) {
  const int64_t nt = get_num_threads();
  return std::min<int64_t>(128, ((M + nt - 1) / nt + 5) / 6 * 6);
}

QuantizedLinear::QuantizedLinear(const char* type, int64_t in, int64_t out, int32_t qmin, int32_t qmax)
    : Module(type), in_features(in), out_features(out), input_qmin(qmin), input_qmax(qmax) {
  QUENCH_CHECK(in > 0 && out > 0 && in <= 65536, type, ": in_features must be in [1, 65536] and out_features "
               "positive, got ", in, " and ", out);
  QUENCH_CHECK(qmin >= 0 && qmax <= 255 && qmin < qmax, type, ": activations are u8: need 0 <= qmin < qmax <= "
               "255, got [", qmin, ", ", qmax, "]");
}

void QuantizedLinear::quantize_input(const float* x, int64_t M, int64_t ldx, uint8_t* q) const {
  QUENCH_CHECK(frozen_input_grid(), type_name(), ": quantize_input needs a frozen input grid (per-token "
               "activations are quantized inside forward)");
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

bool QuantizedLinear::same_input_grid(const QuantizedLinear& o) const {
  return frozen_input_grid() && o.frozen_input_grid() && input_qmin == o.input_qmin && input_qmax == o.input_qmax &&
         input_scale.data_ptr<float>()[0] == o.input_scale.data_ptr<float>()[0] &&
         input_zero_point.data_ptr<int32_t>()[0] == o.input_zero_point.data_ptr<int32_t>()[0];
}

Tensor QuantizedLinear::forward_plus(const Tensor& x, const Tensor& residual) {
  QUENCH_CHECK(residual.defined(), type_name(), "::forward_plus: the residual is undefined");
  return run(x, residual);
}

Tensor QuantizedLinear::run(const Tensor& x, const Tensor& residual) {
  const std::string op = type_name();
  check_dtype(x, kFloat32, op.c_str(), "input");
  QUENCH_CHECK(x.dim() >= 1 && x.sizes().back() == in_features, op, ": input of shape ", shape_str(x.sizes()),
               " does not match in_features ", in_features);
  Shape out_shape = x.sizes();
  out_shape.back() = out_features;
  Tensor r;
  if (residual.defined()) {
    check_dtype(residual, kFloat32, op.c_str(), "residual");
    QUENCH_CHECK(residual.sizes() == out_shape, op, ": residual of shape ", shape_str(residual.sizes()),
                 " does not match the output ", shape_str(out_shape), " of input ", shape_str(x.sizes()));
    r = residual.detach().contiguous();
  }
  Tensor y = Tensor::empty(out_shape, kFloat32);
  const int64_t M = x.numel() / in_features;
  if (M == 0) return y;
  const Tensor xc = x.detach().contiguous();
  forward_rows(xc.data_ptr<float>(), M, y.data_ptr<float>(), r.defined() ? r.data_ptr<float>() : nullptr);
  return y;
}

void QuantizedLinear::forward_rows(const float* x, int64_t M, float* y, const float* residual) {
  const int64_t K = in_features;
  // From the caching allocator: a fresh std::vector would be zero-filled (and page faulted) per call.
  Tensor qa = Tensor::empty({M * K}, kUInt8);
  uint8_t* q = qa.data_ptr<uint8_t>();
  kernels::parallel_for(M, std::max<int64_t>(1, 16384 / K),
                        [&](int64_t b, int64_t e) { quantize_input(x + b * K, e - b, K, q + b * K); });
  prepare();
  gemm_f32(q, M, y, out_features, residual);
}

}  // namespace quench::quant
