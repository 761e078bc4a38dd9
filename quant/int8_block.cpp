#include "quant/int8_block.hpp"

#include <algorithm>
#include <atomic>
#include <memory>

#include "engine/autograd.hpp"
#include "engine/ops.hpp"
#include "engine/ops/layer_norm_rows.hpp"
#include "kernels/parallel.hpp"
#include "nn/layers/attention.hpp"
#include "nn/layers/block.hpp"
#include "nn/layers/layer_norm.hpp"
#include "quant/quantized_linear.hpp"
#include "quant/int8_mlp.hpp"
#include "quant/scratch.hpp"

namespace quench::quant {
namespace {


// y[i] = a[i] + b[i], the residual add of nn::Block (AddFn's x + y). y may be a (element i reads
// only index i), which the vectorizer cannot prove on its own.
void add_rows(const float* a, const float* b, int64_t n, float* y) {
#if defined(__clang__)
#pragma clang loop vectorize(assume_safety)
#elif defined(__GNUC__)
#pragma GCC ivdep
#endif
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

// q = lin's input quantization of norm(x) for rows [0, m) of D floats: a few rows at a time through
// an L1-sized buffer, so the normalized rows are never written out as a whole.
void norm_quantized(const nn::LayerNorm& norm, const QuantizedLinear& lin, const float* x, int64_t m, int64_t D,
                    uint8_t* q) {
  constexpr int64_t kRows = 8;
  thread_local std::vector<float> buf;
  float* h = scratch(buf, kRows * D);
  const float* w = norm.weight.defined() ? norm.weight.data_ptr<float>() : nullptr;
  const float* b = norm.bias.defined() ? norm.bias.data_ptr<float>() : nullptr;
  for (int64_t r0 = 0; r0 < m; r0 += kRows) {
    const int64_t n = std::min(kRows, m - r0);
    detail::layer_norm_rows(x + r0 * D, n, D, w, b, norm.eps, h, nullptr, nullptr);
    lin.quantize_input(h, n, D, q + r0 * D);
  }
}

}  // namespace

Int8Block::Int8Block(nn::Module& block) : Module("Int8Block") {
  for (const char* n : {"norm1", "attn", "norm2", "mlp"}) {
    nn::ModulePtr c = block.child(n);
    QUENCH_CHECK(c != nullptr, "Int8Block: the module has no child '", n, "' (expected an nn::Block)");
    register_module(n, c);
  }
  train(block.is_training());
}

bool Int8Block::fused() {
  auto* ln1 = dynamic_cast<nn::LayerNorm*>(child("norm1").get());
  auto* ln2 = dynamic_cast<nn::LayerNorm*>(child("norm2").get());
  auto* attn = dynamic_cast<nn::Attention*>(child("attn").get());
  auto* mlp = dynamic_cast<Int8Mlp*>(child("mlp").get());
  if (!ln1 || !ln2 || !attn || !mlp || !mlp->fused()) return false;
  auto* qkv = dynamic_cast<QuantizedLinear*>(attn->child("qkv").get());
  auto* proj = dynamic_cast<QuantizedLinear*>(attn->child("proj").get());
  auto* fc1 = dynamic_cast<QuantizedLinear*>(mlp->child("fc1").get());
  auto* fc2 = dynamic_cast<QuantizedLinear*>(mlp->child("fc2").get());
  const int64_t D = attn->dim;
  if (!qkv || !proj || !qkv->frozen_input_grid() || !proj->frozen_input_grid() ||
      qkv->in_features != D || qkv->out_features != 3 * D || proj->in_features != D || proj->out_features != D ||
      fc1->in_features != D || fc2->out_features != D || ln1->normalized_shape != Shape{D} ||
      ln2->normalized_shape != Shape{D})
    return false;
  // The fused path reads the norms' parameters as raw rows (layer_norm's own checks do not run).
  for (const nn::LayerNorm* ln : {ln1, ln2}) {
    if (!(ln->eps >= 0.0)) return false;
    for (const Tensor* p : {&ln->weight, &ln->bias})
      if (p->defined() && (p->dtype() != kFloat32 || p->sizes() != Shape{D} || !p->is_contiguous())) return false;
  }
  for (const nn::ModulePtr& c : children())
    if (c->any_forward_hooks()) return false;
  return true;
}

Tensor Int8Block::forward(const Tensor& x) { return forward_multi({x}); }

Tensor Int8Block::composed(const tensor_list& inputs) {
  Tensor x = inputs[0];
  Tensor h = (*child("norm1"))(x);
  x = x + (*child("attn"))(inputs.size() == 2 ? tensor_list{h, inputs[1]} : tensor_list{h});
  return x + (*child("mlp"))((*child("norm2"))(x));
}

Tensor Int8Block::forward_multi(const tensor_list& inputs) {
  QUENCH_CHECK(inputs.size() == 1 || inputs.size() == 2, "Int8Block: expected inputs {x} or {x, mask}, got ",
               inputs.size());
  Tensor y = fused_rows(inputs, -1);
  return y.defined() ? y : composed(inputs);
}

Tensor Int8Block::forward_prefix(const tensor_list& inputs, int64_t tokens) {
  if (inputs.empty() || inputs.size() > 2 || num_forward_hooks() > 0) return Tensor();
  Tensor y = fused_rows(inputs, tokens);
  return y.defined() ? y : nn::block_forward_prefix(*this, inputs, tokens);
}

Tensor Int8Block::fused_rows(const tensor_list& inputs, int64_t tokens) {
  const Tensor& x_in = inputs[0];
  const bool plain = inputs.size() == 1 || !inputs[1].defined();
  if (!plain || !fused() || x_in.dtype() != kFloat32 || x_in.dim() != 3 ||
      (GradMode::is_enabled() && x_in.requires_grad()))
    return Tensor();
  auto& ln1 = static_cast<nn::LayerNorm&>(*child("norm1"));
  auto& ln2 = static_cast<nn::LayerNorm&>(*child("norm2"));
  auto& attn = static_cast<nn::Attention&>(*child("attn"));
  auto& qkv = static_cast<QuantizedLinear&>(*attn.child("qkv"));
  auto& proj = static_cast<QuantizedLinear&>(*attn.child("proj"));
  const int64_t B = x_in.size(0), N = x_in.size(1), D = attn.dim, T = tokens < 0 ? N : tokens;
  if (x_in.size(2) != D || T > N) return Tensor();  // the composition reports the shape error
  // Fewer images than threads: the fused path would leave threads idle, while the composition splits
  // each GEMM over all of them (quiet machine, 2 threads, batch 1: 0.75 ms composed, 0.89 ms fused).
  const int64_t nt = get_num_threads();
  if (B < nt) return Tensor();
  const Int8Mlp::Plan mlp = static_cast<Int8Mlp&>(*child("mlp")).plan();
  qkv.prepare();
  proj.prepare();
  Tensor x = x_in.detach().contiguous();
  Tensor y = Tensor::empty({B, T, D}, kFloat32);
  if (B == 0 || T == 0) return y;
  // Groups of whole images of about 192 rows (qkv, probs and the MLP's hidden rows fit in L2), at
  // least one group per thread. Each image goes through the same ops whatever the grouping.
  const int64_t per = std::max<int64_t>(1, std::min((192 + N - 1) / N, (B + nt - 1) / nt));
  // One chunk per thread, each taking the next group until none is left: the pool's own chunks
  // (4 per thread) would leave one thread idle for up to an eighth of the block at the end.
  const int64_t groups = (B + per - 1) / per;
  std::atomic<int64_t> next{0};
  kernels::parallel_for(std::min(nt, groups), 1, [&](int64_t, int64_t) {
    NoGradGuard ng;  // grad mode is per thread; these ops are inference only
    thread_local std::vector<uint8_t> q_buf;
    thread_local std::vector<float> p_buf;
    for (int64_t g = next++; g < groups; g = next++) {
      const int64_t b0 = g * per, nb = std::min(per, B - b0), rows = nb * N, trows = nb * T;
      Tensor xg = x.narrow(0, b0, nb), yg = y.narrow(0, b0, nb);
      const float* px = xg.data_ptr<float>();
      float* py = yg.data_ptr<float>();
      uint8_t* q = scratch(q_buf, rows * D);
      // x1 = x + proj(attention(qkv(norm1(x)))) on the first T rows of each image, written into y
      norm_quantized(ln1, qkv, px, rows, D, q);
      Tensor t = Tensor::empty({nb, N, 3 * D}, kFloat32);
      qkv.gemm_f32(q, rows, t.data_ptr<float>(), 3 * D);
      Tensor a = attention(t, attn.heads, attn.scale, Tensor(), T);
      proj.quantize_input(a.data_ptr<float>(), trows, D, q);
      if (T == N) {  // the residual add in the GEMM's epilogue; a prefix's x rows are not evenly spaced
        proj.gemm_f32(q, trows, py, D, px);
      } else {
        float* p = scratch(p_buf, trows * D);
        proj.gemm_f32(q, trows, p, D);
        for (int64_t j = 0; j < nb; ++j) add_rows(px + j * N * D, p + j * T * D, T * D, py + j * T * D);
      }
      // y = x1 + mlp(norm2(x1)), the add in fc2's epilogue
      norm_quantized(ln2, *mlp.fc1, py, trows, D, q);
      Int8Mlp::rows_quantized(mlp, q, trows, py, py);
    }
  });
  return y;
}

std::vector<std::string> fuse_int8_blocks(nn::Module& model) {
  std::vector<std::string> fused;
  for (const auto& [name, m] : model.named_modules()) {
    if (!dynamic_cast<nn::Block*>(m.get()) || name.empty()) continue;
    auto blk = std::make_shared<Int8Block>(*m);
    if (!blk->fused()) continue;
    model.set_submodule(name, blk);
    fused.push_back(name);
  }
  return fused;
}

}  // namespace quench::quant
