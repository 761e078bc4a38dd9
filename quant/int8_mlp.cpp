#include "quant/int8_mlp.hpp"

#include <algorithm>
#include <memory>

#include "kernels/gelu_rows.hpp"
#include "kernels/parallel.hpp"
#include "nn/layers/activation.hpp"
#include "nn/layers/mlp.hpp"
#include "quant/quantized_linear.hpp"
#include "quant/scratch.hpp"

namespace quench::quant {

Int8Mlp::Int8Mlp(nn::Module& mlp) : Module("Int8Mlp") {
  for (const char* n : {"fc1", "act", "fc2"}) {
    nn::ModulePtr c = mlp.child(n);
    QUENCH_CHECK(c != nullptr, "Int8Mlp: the module has no child '", n, "' (expected an nn::Mlp)");
    register_module(n, c);
  }
  train(mlp.is_training());
}

bool Int8Mlp::row_independent() const {
  return children_row_independent();
}

bool Int8Mlp::fused() const {
  auto fc1 = std::dynamic_pointer_cast<QuantizedLinear>(child("fc1"));
  auto fc2 = std::dynamic_pointer_cast<QuantizedLinear>(child("fc2"));
  auto act = std::dynamic_pointer_cast<nn::GELU>(child("act"));
  return fc1 && fc2 && act && act->approximate == "none" && fc1->out_features == fc2->in_features &&
         fc1->frozen_input_grid() && fc2->frozen_input_grid() &&
         fc1->num_forward_hooks() == 0 && act->num_forward_hooks() == 0 && fc2->num_forward_hooks() == 0;
}

Int8Mlp::Plan Int8Mlp::plan() {
  QUENCH_CHECK(fused(), "Int8Mlp: the fused path needs integer fc1 / fc2 with frozen input grids, an exact GELU "
               "and no hooks");
  Plan p;
  p.fc1 = static_cast<QuantizedLinear*>(child("fc1").get());
  p.fc2 = static_cast<QuantizedLinear*>(child("fc2").get());
  p.fc1->prepare();
  p.fc2->prepare();
  return p;
}

void Int8Mlp::rows(const Plan& p, const float* x, int64_t m, float* y, const float* residual) {
  const int64_t K = p.fc1->in_features;
  thread_local std::vector<uint8_t> qx_buf;
  uint8_t* qx = scratch(qx_buf, m * K);
  p.fc1->quantize_input(x, m, K, qx);
  rows_quantized(p, qx, m, y, residual);
}

void Int8Mlp::rows_quantized(const Plan& p, const uint8_t* qx, int64_t m, float* y, const float* residual) {
  const int64_t K = p.fc1->in_features, H = p.fc1->out_features, N = p.fc2->out_features;
  thread_local std::vector<uint8_t> qh_buf;
  thread_local std::vector<float> h_buf, g_buf;
  // At most 128 rows at a time: h (128 x hidden f32) and both weight matrices stay in L2.
  for (int64_t m0 = 0; m0 < m; m0 += 128) {
    const int64_t r = std::min<int64_t>(128, m - m0);
    uint8_t* qh = scratch(qh_buf, r * H);
    float* h = scratch(h_buf, r * H);
    float* g = scratch(g_buf, H);
    p.fc1->gemm_f32(qx + m0 * K, r, h, H);
    for (int64_t i = 0; i < r; ++i) {  // one row of GELU at a time, quantized while in L1
      kernels::gelu_rows(h + i * H, H, g);  // nn::GELU("none")'s bits
      p.fc2->quantize_input(g, 1, H, qh + i * H);
    }
    p.fc2->gemm_f32(qh, r, y + m0 * N, N, residual ? residual + m0 * N : nullptr);
  }
}

Tensor Int8Mlp::forward(const Tensor& x) {
  auto fc1 = std::dynamic_pointer_cast<QuantizedLinear>(child("fc1"));
  if (!fused() || x.dtype() != kFloat32 || x.dim() < 1 || x.sizes().back() != fc1->in_features)
    return (*child("fc2"))((*child("act"))((*child("fc1"))(x)));  // nn::Mlp's composition
  return fused_forward(x, Tensor());
}

Tensor Int8Mlp::fused_forward(const Tensor& x, const Tensor& residual) {
  const Plan p = plan();
  const int64_t K = p.fc1->in_features, N = p.fc2->out_features;
  QUENCH_CHECK(x.dtype() == kFloat32 && x.dim() >= 1 && x.sizes().back() == K, "Int8Mlp: expected f32 [..., ", K,
               "], got ", dtype_name(x.dtype()), " ", shape_str(x.sizes()));
  const int64_t M = x.numel() / K;
  Shape out_shape = x.sizes();
  out_shape.back() = N;
  QUENCH_CHECK(!residual.defined() || (residual.dtype() == kFloat32 && residual.sizes() == out_shape),
               "Int8Mlp: the residual must be f32 ", shape_str(out_shape), ", got ", shape_str(residual.sizes()));
  Tensor y = Tensor::empty(out_shape, kFloat32);
  if (M == 0) return y;
  Tensor xc = x.detach().contiguous();
  Tensor rc = residual.defined() ? residual.detach().contiguous() : Tensor();
  const float* px = xc.data_ptr<float>();
  const float* pr = rc.defined() ? rc.data_ptr<float>() : nullptr;
  float* py = y.data_ptr<float>();
  const int64_t rows_per = fused_row_block(M);  // the blocking never changes a bit
  kernels::parallel_for((M + rows_per - 1) / rows_per, 1, [&](int64_t b0, int64_t b1) {
    const int64_t m0 = b0 * rows_per, m1 = std::min(M, b1 * rows_per);
    rows(p, px + m0 * K, m1 - m0, py + m0 * N, pr ? pr + m0 * N : nullptr);
  });
  return y;
}

std::vector<std::string> fuse_int8_mlps(nn::Module& model) {
  std::vector<std::string> fused;
  for (const auto& [name, m] : model.named_modules()) {
    if (!dynamic_cast<nn::Mlp*>(m.get()) || name.empty()) continue;
    auto mlp = std::make_shared<Int8Mlp>(*m);
    if (!mlp->fused()) continue;
    model.set_submodule(name, mlp);
    fused.push_back(name);
  }
  return fused;
}

}  // namespace quench::quant
