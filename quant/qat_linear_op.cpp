#include "quant/qat_linear_op.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/autograd.hpp"
#include "engine/ops.hpp"
#include "kernels/fake_quant_rows.hpp"
#include "kernels/gemm.hpp"
#include "kernels/gemm_u8s8.hpp"
#include "kernels/parallel.hpp"
#include "quant/int8_linear.hpp"
#include "quant/qat_rows.hpp"

namespace quench::quant {
namespace {

using autograd::AutogradContext;
using autograd::Function;

// Whether the int8 GEMM takes these operands: u8 or s8 (*x_signed) activation codes, symmetric s8
// weight codes, positive finite scales (it rejects others; the fp32 path carries them through as
// fake_quantize does).
bool fits_int8_gemm(const QuantSpec& xspec, float xs, int32_t xz, const QuantSpec& wspec, const Tensor& ws,
                    const Tensor& wz, int64_t N, int64_t K, bool* x_signed) {
  const bool x_u8 = xspec.quant_min >= 0 && xspec.quant_max <= 255 && xz >= 0 && xz <= 255;
  const bool x_s8 = xspec.quant_min >= -128 && xspec.quant_max <= 127 && xz >= -128 && xz <= 127;
  *x_signed = !x_u8;
  if (!(x_u8 || x_s8) || wspec.quant_min < -128 || wspec.quant_max > 127 || N < 1 || K < 1 || K > 65536)
    return false;
  auto usable = [](float s) { return std::isfinite(s) && s > 0; };
  const float* ps = ws.data_ptr<float>();
  const int32_t* pz = wz.data_ptr<int32_t>();
  return usable(xs) && std::all_of(ps, ps + ws.numel(), usable) &&
         std::all_of(pz, pz + wz.numel(), [](int32_t z) { return z == 0; });
}

// y = fq(x) fq(W)^T + b   x:[M, K]  W:[N, K]  b:[N]  scales: x [1], W [1] or [N]
struct QATLinearFn : Function<QATLinearFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& w, const Tensor& bias,
                        const Tensor& xs, const Tensor& xz, const QuantSpec& xspec, const Tensor& ws,
                        const Tensor& wz, const QuantSpec& wspec) {
    const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
    const bool gx = ctx->needs_input_grad(0), gw = ctx->needs_input_grad(1);
    const float sx = xs.data_ptr<float>()[0];
    const int32_t zx = xz.data_ptr<int32_t>()[0];
    bool x_signed = false;
    const bool int8 = M > 0 && fits_int8_gemm(xspec, sx, zx, wspec, ws, wz, N, K, &x_signed);
    // x's dequantized values are never stored: the backward takes dW = dY^T X_hat as s_x (dY^T X_q)
    // (one tensor of [M, K] floats less to write and keep per QAT Linear).
    Tensor xq = gw || !int8 ? Tensor::empty({M, K}, kFloat32) : Tensor();
    Tensor xcode = int8 ? Tensor::empty({M, K}, kUInt8) : Tensor();
    Tensor wq = int8 ? Tensor() : Tensor::empty({N, K}, kFloat32);
    Tensor wcode = int8 ? Tensor::empty({N, K}, kUInt8) : Tensor();
    Tensor what = gx ? Tensor::empty({N, K}, kFloat32) : Tensor();  // W_hat: dX's operand only
    Tensor mx = gx ? Tensor::empty({M, K}, kUInt8) : Tensor(), mw = gw ? Tensor::empty({N, K}, kUInt8) : Tensor();
    quantize_rows(x.data_ptr<float>(), M, K, &sx, &zx, 1, xspec, or_null<float>(xq), nullptr, or_null<uint8_t>(mx),
                  or_null<uint8_t>(xcode));
    quantize_rows(w.data_ptr<float>(), N, K, ws.data_ptr<float>(), wz.data_ptr<int32_t>(), ws.numel(), wspec,
                  or_null<float>(wq), or_null<float>(what), or_null<uint8_t>(mw), or_null<uint8_t>(wcode));
    std::vector<float> w_scale(N);
    for (int64_t n = 0; n < N; ++n) w_scale[n] = ws.data_ptr<float>()[ws.numel() == 1 ? 0 : n];
    const float* pb = bias.defined() ? bias.data_ptr<float>() : nullptr;
    Tensor y = Tensor::empty({M, N}, kFloat32);
    float* py = y.data_ptr<float>();
    if (int8) {  // the converted Int8Linear's own call: exact accumulator, the same f32 epilogue
      const auto packed =
          kernels::pack_weights_u8s8(reinterpret_cast<const int8_t*>(wcode.data_ptr<uint8_t>()), N, K, K);
      int8_gemm_f32(packed, xcode.data_ptr<uint8_t>(), x_signed, zx, sx, w_scale.data(), pb, M, py, N, nullptr,
                    "qat_linear");
    } else {  // the fp32 GEMM of the integer codes, then the kernels' f32 epilogue operation for operation
      kernels::sgemm(false, true, M, N, K, 1.f, xq.data_ptr<float>(), K, wq.data_ptr<float>(), K, 0.f, py, N);
      std::vector<float> mult(N);
      for (int64_t n = 0; n < N; ++n) mult[n] = sx * w_scale[n];
      kernels::parallel_for(M, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, N)), [&](int64_t b, int64_t e) {
        for (int64_t m = b; m < e; ++m) kernels::scale_bias_row(py + m * N, mult.data(), pb, N);
      });
    }
    ctx->save_for_backward({xq, what, mx, mw});
    ctx->saved_data["x_scale"] = static_cast<double>(sx);
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto v = ctx->get_saved_variables();
    const Tensor &xq = v[0], &what = v[1];
    Tensor dy = g[0].contiguous();
    Tensor dx, dw, db;
    if (ctx->needs_input_grad(0)) {  // dX = dY W_hat, masked
      dx = matmul(dy, what).contiguous();
      apply_mask(dx, v[2]);
    }
    if (ctx->needs_input_grad(1)) {  // dW = dY^T X_hat = s_x (dY^T X_q), masked
      dw = matmul(dy.t(), xq).contiguous();
      const float sx = static_cast<float>(std::get<double>(ctx->saved_data["x_scale"]));
      float* pw = dw.data_ptr<float>();
      kernels::parallel_for(dw.numel(), 32768, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) pw[i] *= sx;
      });
      apply_mask(dw, v[3]);
    }
    if (ctx->needs_input_grad(2)) db = dy.sum({0});
    return {dx, dw, db, Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

}  // namespace

Tensor qat_linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& x_scale,
                  const Tensor& x_zero_point, const QuantSpec& x_spec, const Tensor& w_scale,
                  const Tensor& w_zero_point, const QuantSpec& w_spec) {
  check_dtype(x, kFloat32, "qat_linear", "input");
  check_dtype(weight, kFloat32, "qat_linear", "weight");
  QUENCH_CHECK(weight.dim() == 2 && x.dim() >= 1 && x.sizes().back() == weight.size(1),
               "qat_linear: input of shape ", shape_str(x.sizes()), " does not match weight of shape ",
               shape_str(weight.sizes()), "; expected [..., in_features] with weight [out, in]");
  const int64_t N = weight.size(0), K = weight.size(1);
  if (bias.defined())
    QUENCH_CHECK(bias.dtype() == kFloat32 && bias.dim() == 1 && bias.size(0) == N, "qat_linear: bias of shape ",
                 shape_str(bias.sizes()), " does not match weight ", shape_str(weight.sizes()), "; expected [",
                 N, "]");
  QUENCH_CHECK(!x_spec.per_channel, "qat_linear: activations must be quantized per tensor, got ", x_spec.str());
  QUENCH_CHECK(!w_spec.per_channel || w_spec.axis == 0, "qat_linear: per-channel weights need axis 0 (output "
               "channels), got ", w_spec.str());
  const int64_t wc = w_spec.per_channel ? N : 1;
  QUENCH_CHECK(x_scale.numel() == 1 && x_zero_point.numel() == 1 && w_scale.numel() == wc &&
                   w_zero_point.numel() == wc,
               "qat_linear: expected 1 input scale / zero point and ", wc, " weight scale(s) / zero point(s), got ",
               x_scale.numel(), "/", x_zero_point.numel(), " and ", w_scale.numel(), "/", w_zero_point.numel());
  check_dtype(x_scale, kFloat32, "qat_linear", "input scale");
  check_dtype(w_scale, kFloat32, "qat_linear", "weight scale");
  check_dtype(x_zero_point, kInt32, "qat_linear", "input zero point");
  check_dtype(w_zero_point, kInt32, "qat_linear", "weight zero point");
  Shape out_shape = x.sizes();
  out_shape.back() = N;
  Tensor x2 = x.reshape({-1, K}).contiguous();
  return QATLinearFn::apply(x2, weight.contiguous(), bias.defined() ? bias.contiguous() : bias,
                            x_scale.detach().contiguous(), x_zero_point.contiguous(), x_spec,
                            w_scale.detach().contiguous(), w_zero_point.contiguous(), w_spec)
      .view(out_shape);
}

}  // namespace quench::quant
