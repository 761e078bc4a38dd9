// Attention's softmax on scores computed elsewhere (the integer products of a quantized attention):
// the scale, the key mask and the softmax in the rows of kernels/softmax_rows.hpp, one (batch, head)
// block at a time, as the fused attention op runs them.
#include "engine/autograd.hpp"
#include "engine/ops/nn_common.hpp"
#include "engine/ops/nn_ops.hpp"
#include "kernels/parallel.hpp"
#include "kernels/softmax_rows.hpp"

namespace quench {
namespace {

using autograd::AutogradContext;
using autograd::Function;

// probs = softmax(scale * scores, keys with mask != 0 at -inf)   scores [B, H, Q, N] -> probs [B, H, Q, N]
struct AttentionSoftmaxFn : Function<AttentionSoftmaxFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& scores_in, const Tensor& mask_in, double scale) {
    Tensor x = scores_in.contiguous(), mask = mask_in.defined() ? mask_in.contiguous() : Tensor();
    const int64_t B = x.size(0), H = x.size(1), Q = x.size(2), N = x.size(3);
    Tensor y = Tensor::empty(x.sizes(), kFloat32);
    const float* px = x.data_ptr<float>();
    const uint8_t* pm = mask.defined() ? mask.data_ptr<uint8_t>() : nullptr;
    float* py = y.data_ptr<float>();
    const float sc = static_cast<float>(scale);
    kernels::parallel_for(B * H, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i)
        kernels::attn_softmax_rows(px + i * Q * N, Q, N, sc, pm ? pm + (i / H) * N : nullptr, py + i * Q * N);
    });
    ctx->save_for_backward({y});
    ctx->saved_data["scale"] = scale;
    return y;
  }

  // dscores = scale * (probs * (g - sum(g * probs)))
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    const Tensor y = ctx->get_saved_variables()[0];
    Tensor gy = g[0].contiguous();
    const int64_t R = y.size(0) * y.size(1), Q = y.size(2), N = y.size(3);
    Tensor dx = Tensor::empty(y.sizes(), kFloat32);
    const float *py = y.data_ptr<float>(), *pg = gy.data_ptr<float>();
    float* pd = dx.data_ptr<float>();
    const float sc = static_cast<float>(std::get<double>(ctx->saved_data["scale"]));
    kernels::parallel_for(R, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i)
        kernels::attn_softmax_rows_backward(py + i * Q * N, pg + i * Q * N, Q, N, sc, pd + i * Q * N);
    });
    return {dx, Tensor()};
  }
};

}  // namespace

Tensor attention_softmax(const Tensor& scores, double scale, const Tensor& key_padding_mask) {
  check_dtype(scores, kFloat32, "attention_softmax", "scores");
  QUENCH_CHECK(scores.dim() == 4, "attention_softmax: expected scores [B, heads, Q, N], got ",
               shape_str(scores.sizes()));
  const int64_t B = scores.size(0), N = scores.size(3);
  if (key_padding_mask.defined())
    QUENCH_CHECK(key_padding_mask.dtype() == kUInt8 && key_padding_mask.dim() == 2 && key_padding_mask.size(0) == B &&
                     key_padding_mask.size(1) == N,
                 "attention_softmax: expected a u8 key-padding mask [", B, ", ", N, "] for scores ",
                 shape_str(scores.sizes()), ", got ", dtype_name(key_padding_mask.dtype()), " ",
                 shape_str(key_padding_mask.sizes()));
  if (scores.numel() == 0) return Tensor::empty(scores.sizes(), kFloat32);
  return AttentionSoftmaxFn::apply(scores, key_padding_mask, scale);
}

}  // namespace quench
