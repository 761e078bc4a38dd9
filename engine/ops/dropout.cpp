// dropout: a keep-mask that is a function of one draw from a Generator and the element's index (so
// results depend on the seed only, never on the thread count, and the mask is drawn in parallel),
// kept elements scaled by 1/(1-p); the element loops are kernels/dropout_rows.hpp.
#include <cmath>

#include "engine/autograd.hpp"
#include "engine/ops/creation.hpp"
#include "engine/ops/nn_common.hpp"
#include "engine/ops/nn_ops.hpp"
#include "kernels/dropout_rows.hpp"

namespace quench {
namespace {

using autograd::AutogradContext;

using autograd::Function;

// y = x * mask / (1 - p)   x: any shape; mask: u8 of x's shape, 1 with probability 1 - p
struct DropoutFn : Function<DropoutFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x_in, double p, Generator& gen) {
    Tensor x = x_in.contiguous();
    const int64_t n = x.numel();
    Tensor mask = Tensor::empty(x.sizes(), kUInt8);
    uint8_t* pm = mask.data_ptr<uint8_t>();
    // Kept when the draw is below (1 - p) * 2^24, as Generator::uniform() < 1 - p would be.
    const uint32_t keep = static_cast<uint32_t>(std::ceil((1.0 - p) * 16777216.0));
    const uint64_t key = gen.next_u64();
    const float scale = p < 1.0 ? static_cast<float>(1.0 / (1.0 - p)) : 0.f;
    Tensor y = Tensor::empty(x.sizes(), kFloat32);
    const float* px = x.data_ptr<float>();
    float* py = y.data_ptr<float>();
    kernels::parallel_for(n, 16384, [&](int64_t b, int64_t e) {
      kernels::dropout_rows(px + b, e - b, key, static_cast<uint64_t>(b), keep, scale, pm + b, py + b);
    });
    ctx->save_for_backward({mask});
    ctx->saved_data["scale"] = static_cast<double>(scale);
    return y;
  }
  // dx = g * mask / (1 - p)
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    Tensor mask = ctx->get_saved_variables()[0];
    const float scale = static_cast<float>(std::get<double>(ctx->saved_data["scale"]));
    Tensor gc = g[0].contiguous();
    Tensor dx = Tensor::empty(mask.sizes(), kFloat32);
    const uint8_t* pm = mask.data_ptr<uint8_t>();
    const float* pg = gc.data_ptr<float>();
    float* pd = dx.data_ptr<float>();
    kernels::parallel_for(mask.numel(), 16384, [&](int64_t b, int64_t e) {
      kernels::dropout_backward_rows(pg + b, pm + b, e - b, scale, pd + b);
    });
    return {dx};
  }
};

}  // namespace

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  check_dtype(x, kFloat32, "dropout", "input");
  QUENCH_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability p must be in [0, 1], got ", p,
               " (input of shape ", shape_str(x.sizes()), ")");
  if (!training || p == 0.0) return x;
  return DropoutFn::apply(x, p, gen);
}

Tensor dropout(const Tensor& x, double p, bool training) {
  return dropout(x, p, training, default_generator());
}

}  // namespace quench
