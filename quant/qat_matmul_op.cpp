#include "quant/qat_matmul_op.hpp"

#include <cmath>
#include <vector>

#include "engine/autograd.hpp"
#include "engine/ops.hpp"
#include "kernels/parallel.hpp"
#include "quant/grid_product.hpp"
#include "quant/qat_rows.hpp"
#include "quant/scratch.hpp"

namespace quench::quant {
namespace {

using autograd::AutogradContext;
using autograd::Function;

// y [G, M, N] = fq(a) fq(b)^T per matrix   a [G, M, K]  b [G, N, K], or fq(a) fq(b) with b [G, K, N] (b_kn)
struct QATMatmulFn : Function<QATMatmulFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, const Tensor& b, const Tensor& as, const Tensor& az,
                        const QuantSpec& aspec, const Tensor& bs, const Tensor& bz, const QuantSpec& bspec,
                        bool b_kn) {
    const int64_t G = a.size(0), M = a.size(1), K = a.size(2), N = b_kn ? b.size(2) : b.size(1);
    const bool ga = ctx->needs_input_grad(0), gb = ctx->needs_input_grad(1);
    const float sa = as.data_ptr<float>()[0], sb = bs.data_ptr<float>()[0];
    const int32_t za = az.data_ptr<int32_t>()[0], zb = bz.data_ptr<int32_t>()[0];
    Tensor acode = Tensor::empty({G, M, K}, kUInt8), bcode = Tensor::empty(b.sizes(), kUInt8);
    // da needs b_hat and a's mask, db needs a_hat and b's mask.
    Tensor ahat = gb ? Tensor::empty({G, M, K}, kFloat32) : Tensor();
    Tensor bhat = ga ? Tensor::empty(b.sizes(), kFloat32) : Tensor();
    Tensor ma = ga ? Tensor::empty({G, M, K}, kUInt8) : Tensor(), mb = gb ? Tensor::empty(b.sizes(), kUInt8) : Tensor();
    quantize_rows(a.data_ptr<float>(), G * M, K, &sa, &za, 1, aspec, nullptr, or_null<float>(ahat),
                  or_null<uint8_t>(ma), acode.data_ptr<uint8_t>());
    // b's codes shifted by -128 (grid, zero point and range alike) come out as the s8 values qb - 128;
    // the rounding, clamping and mask are those of the unshifted grid.
    QuantSpec shifted = bspec;
    shifted.quant_min -= 128;
    shifted.quant_max -= 128;
    const int32_t zb_s8 = zb - 128;
    quantize_rows(b.data_ptr<float>(), G * b.size(1), b.size(2), &sb, &zb_s8, 1, shifted, nullptr, or_null<float>(bhat),
                  or_null<uint8_t>(mb), bcode.data_ptr<uint8_t>());
    const uint8_t* pb = bcode.data_ptr<uint8_t>();
    Tensor y = Tensor::empty({G, M, N}, kFloat32);
    const float mult = sa * sb;
    const uint8_t* pa = acode.data_ptr<uint8_t>();
    float* py = y.data_ptr<float>();
    if (M > 0 && N > 0)
      kernels::parallel_for(G, 1, [&](int64_t s, int64_t e) {
        thread_local std::vector<int32_t> acc_buf;
        int32_t* acc = scratch(acc_buf, M * N);
        for (int64_t g = s; g < e; ++g)
          grid_product(pa + g * M * K, za, reinterpret_cast<const int8_t*>(pb + g * N * K), b_kn, zb, M, N, K,
                       mult, acc, py + g * M * N, N);
      });
    ctx->save_for_backward({ahat, bhat, ma, mb});
    ctx->saved_data["b_kn"] = static_cast<int64_t>(b_kn);
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto v = ctx->get_saved_variables();
    const bool b_kn = std::get<int64_t>(ctx->saved_data["b_kn"]) != 0;
    Tensor dy = g[0].contiguous();
    Tensor da, db;
    if (ctx->needs_input_grad(0)) {  // da = dy b_hat (b_hat^T when b is [K, N]), masked
      da = matmul(dy, b_kn ? v[1].transpose(-2, -1) : v[1]).contiguous();
      apply_mask(da, v[2]);
    }
    if (ctx->needs_input_grad(1)) {  // db = dy^T a_hat, or a_hat^T dy when b is [K, N]; masked
      db = (b_kn ? matmul(v[0].transpose(-2, -1), dy) : matmul(dy.transpose(-2, -1), v[0])).contiguous();
      apply_mask(db, v[3]);
    }
    return {da, db, Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

}  // namespace

bool qat_matmul_fits(const QuantSpec& spec, const Tensor& scale, const Tensor& zero_point) {
  if (spec.per_channel || spec.per_token || spec.group_size != 0 || spec.quant_min < 0 || spec.quant_max > 255 ||
      scale.numel() != 1 || zero_point.numel() != 1 || scale.dtype() != kFloat32 || zero_point.dtype() != kInt32)
    return false;
  const float s = scale.data_ptr<float>()[0];
  const int32_t z = zero_point.data_ptr<int32_t>()[0];
  return std::isfinite(s) && s > 0 && z >= 0 && z <= 255;
}

namespace {

// a [..., M, K] against b [..., N, K] (b_kn false) or [..., K, N] (b_kn true).
Tensor grid_matmul(const Tensor& a, const Tensor& a_scale, const Tensor& a_zero_point, const QuantSpec& a_spec,
                   const Tensor& b, const Tensor& b_scale, const Tensor& b_zero_point, const QuantSpec& b_spec,
                   bool b_kn) {
  const char* op = b_kn ? "qat_matmul" : "qat_matmul_nt";
  check_dtype(a, kFloat32, op, "a");
  check_dtype(b, kFloat32, op, "b");
  const int64_t d = a.dim();
  bool ok = d >= 2 && b.dim() == d && a.size(-1) == (b_kn ? b.size(-2) : b.size(-1));
  for (int64_t i = 0; ok && i < d - 2; ++i) ok = a.size(i) == b.size(i);
  QUENCH_CHECK(ok, op, ": a of shape ", shape_str(a.sizes()), " does not match b of shape ", shape_str(b.sizes()),
               "; expected a [..., M, K] and b ", b_kn ? "[..., K, N]" : "[..., N, K]", " with the same leading dims");
  QUENCH_CHECK(a.size(-1) <= kQatMatmulMaxK, op, ": K = ", a.size(-1), " exceeds ", kQatMatmulMaxK,
               ", past which a sum of K products of two u8 offsets (up to 255 * 255 each) can leave int32");
  QUENCH_CHECK(qat_matmul_fits(a_spec, a_scale, a_zero_point) && qat_matmul_fits(b_spec, b_scale, b_zero_point), op,
               ": both operands need per-tensor u8 codes with a positive finite scale, got ", a_spec.str(), " and ",
               b_spec.str(), "; use fake_quantize and matmul for other specs");
  const int64_t M = a.size(-2), K = a.size(-1), N = b_kn ? b.size(-1) : b.size(-2);
  const int64_t G = a.numel() / std::max<int64_t>(1, M * K);
  Shape out = a.sizes();
  out.back() = N;
  if (a.numel() == 0 || b.numel() == 0) return zeros(out);
  const Tensor b3 = b_kn ? b.reshape({G, K, N}) : b.reshape({G, N, K});
  return QATMatmulFn::apply(a.reshape({G, M, K}).contiguous(), b3.contiguous(), a_scale.detach().contiguous(),
                            a_zero_point.contiguous(), a_spec, b_scale.detach().contiguous(),
                            b_zero_point.contiguous(), b_spec, b_kn)
      .view(out);
}

}  // namespace

Tensor qat_matmul_nt(const Tensor& a, const Tensor& a_scale, const Tensor& a_zero_point, const QuantSpec& a_spec,
                     const Tensor& b, const Tensor& b_scale, const Tensor& b_zero_point, const QuantSpec& b_spec) {
  return grid_matmul(a, a_scale, a_zero_point, a_spec, b, b_scale, b_zero_point, b_spec, false);
}

Tensor qat_matmul(const Tensor& a, const Tensor& a_scale, const Tensor& a_zero_point, const QuantSpec& a_spec,
                  const Tensor& b, const Tensor& b_scale, const Tensor& b_zero_point, const QuantSpec& b_spec) {
  return grid_matmul(a, a_scale, a_zero_point, a_spec, b, b_scale, b_zero_point, b_spec, true);
}

}  // namespace quench::quant
