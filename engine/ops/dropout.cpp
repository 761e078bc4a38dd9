// dropout: a keep-mask that is a function of one draw from a Generator and the element's index (so
// results depend on the seed only, never on the thread count, and the mask is drawn in parallel),
// kept elements scaled by 1/(1-p).
#include <cmath>

#include "engine/autograd.hpp"
#include "engine/ops/creation.hpp"
#include "engine/ops/nn_common.hpp"
#include "engine/ops/nn_ops.hpp"

namespace quench {
namespace {

using autograd::AutogradContext;

// Element i's uniform 24-bit draw: splitmix64's finalizer on key + i * golden ratio (a counter-based
// generator: any element, in any order, on any thread).
inline uint32_t draw24(uint64_t key, uint64_t i) {
  uint64_t z = key + (i + 1) * 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return static_cast<uint32_t>((z ^ (z >> 31)) >> 40);
}
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
      for (int64_t i = b; i < e; ++i) {
        pm[i] = draw24(key, static_cast<uint64_t>(i)) < keep;
        py[i] = pm[i] ? px[i] * scale : 0.f;
      }
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
      for (int64_t i = b; i < e; ++i) pd[i] = pm[i] ? pg[i] * scale : 0.f;
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
