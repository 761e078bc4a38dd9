#include "quant/int8_mlp.hpp"

#include <algorithm>
#include <memory>

#include "engine/elementwise.hpp"
#include "engine/vmath.hpp"
#include "kernels/parallel.hpp"
#include "nn/layers/activation.hpp"
#include "nn/layers/mlp.hpp"
#include "quant/int8_linear.hpp"

namespace quench::quant {
namespace {

// nn::GELU("none") element for element: the lambda of GeluFn in engine/ops/activation.cpp (same
// constant, same order of operations, engine/vmath.hpp's erf). The fused-vs-composed tests fail
// if the two ever drift apart.
constexpr float kSqrt1_2 = 0.70710678118654752440f;
inline float gelu_exact(float x) { return x * 0.5f * (1.0f + detail::verf(x * kSqrt1_2)); }

// y = gelu(x), x and y distinct (in place, the loop's overlap check would send it down the scalar path).
void gelu_row(const float* x, int64_t n, float* y) {
  // The engine's own loop (baseline or AVX2 without FMA: the same bits either way).
  detail::contiguous_loop(detail::use_avx2(), y, n, [](float v) { return gelu_exact(v); }, x);
}

// Grow-only per-thread scratch: a block's buffers are reused across blocks and calls.
template <class T>
T* scratch(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

}  // namespace

Int8Mlp::Int8Mlp(nn::Module& mlp) : Module("Int8Mlp") {
  for (const char* n : {"fc1", "act", "fc2"}) {
    nn::ModulePtr c = mlp.child(n);
    QUENCH_CHECK(c != nullptr, "Int8Mlp: the module has no child '", n, "' (expected an nn::Mlp)");
    register_module(n, c);
  }
  train(mlp.is_training());
}

bool Int8Mlp::fused() const {
  auto fc1 = std::dynamic_pointer_cast<Int8Linear>(child("fc1"));
  auto fc2 = std::dynamic_pointer_cast<Int8Linear>(child("fc2"));
  auto act = std::dynamic_pointer_cast<nn::GELU>(child("act"));
  return fc1 && fc2 && act && act->approximate == "none" && fc1->out_features == fc2->in_features &&
         fc1->num_forward_hooks() == 0 && act->num_forward_hooks() == 0 && fc2->num_forward_hooks() == 0;
}

Tensor Int8Mlp::forward(const Tensor& x) {
  auto fc1 = std::dynamic_pointer_cast<Int8Linear>(child("fc1"));
  auto fc2 = std::dynamic_pointer_cast<Int8Linear>(child("fc2"));
  if (!fused() || x.dtype() != kFloat32 || x.dim() < 1 || x.sizes().back() != fc1->in_features)
    return (*child("fc2"))((*child("act"))((*child("fc1"))(x)));  // nn::Mlp's composition
  const int64_t K = fc1->in_features, H = fc1->out_features, N = fc2->out_features, M = x.numel() / K;
  Shape out_shape = x.sizes();
  out_shape.back() = N;
  Tensor y = Tensor::empty(out_shape, kFloat32);
  if (M == 0) return y;
  Tensor xc = x.detach().contiguous();
  const float* px = xc.data_ptr<float>();
  float* py = y.data_ptr<float>();
  const kernels::PackedWeightsU8S8& w1 = fc1->packed();
  const kernels::PackedWeightsU8S8& w2 = fc2->packed();
  // Blocks of up to 128 rows keep h (128 x hidden f32) and both weight matrices in L2; small inputs
  // are cut in one block per thread (multiples of 6, the micro-kernel's rows). Every row is computed
  // the same way whatever the cut, so the blocking never changes a bit.
  const int64_t nt = get_num_threads();
  const int64_t rows = std::min<int64_t>(128, ((M + nt - 1) / nt + 5) / 6 * 6);
  kernels::parallel_for((M + rows - 1) / rows, 1, [&](int64_t b0, int64_t b1) {
    thread_local std::vector<uint8_t> qx_buf, qh_buf;
    thread_local std::vector<float> h_buf, g_buf;
    uint8_t* qx = scratch(qx_buf, rows * K);
    uint8_t* qh = scratch(qh_buf, rows * H);
    float* h = scratch(h_buf, rows * H);
    float* g = scratch(g_buf, H);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t m0 = b * rows, m = std::min(rows, M - m0);
      fc1->quantize_input(px + m0 * K, m, K, qx);
      fc1->gemm_f32(w1, qx, m, h, H);
      for (int64_t r = 0; r < m; ++r) {  // one row of GELU at a time, quantized while in L1
        gelu_row(h + r * H, H, g);
        fc2->quantize_input(g, 1, H, qh + r * H);
      }
      fc2->gemm_f32(w2, qh, m, py + m0 * N, N);
    }
  });
  return y;
}

std::vector<std::string> fuse_int8_mlps(nn::Module& model) {
  std::vector<std::string> fused;
  for (const auto& [name, m] : model.named_modules()) {
    if (!dynamic_cast<nn::Mlp*>(m.get()) || name.empty()) continue;
    auto mlp = std::make_shared<Int8Mlp>(*m);
    if (!mlp->fused()) continue;
    const size_t dot = name.rfind('.');
    nn::ModulePtr parent = model.get_submodule(dot == std::string::npos ? "" : name.substr(0, dot));
    parent->replace_module(dot == std::string::npos ? name : name.substr(dot + 1), mlp);
    fused.push_back(name);
  }
  return fused;
}

}  // namespace quench::quant
