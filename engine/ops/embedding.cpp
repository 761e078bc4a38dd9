// embedding and index_select: gathering slices by int32 indices; backward scatter-adds them back.
#include <cstring>
#include <string>

#include "engine/autograd.hpp"
#include "engine/ops/nn_common.hpp"
#include "engine/ops/nn_ops.hpp"

namespace quench {
namespace {

using autograd::AutogradContext;
using autograd::Function;

// Throws naming the first index outside [0, n).
void check_indices(const Tensor& idx, int64_t n, const char* op, const std::string& what,
                   const Shape& shape) {
  const int32_t* p = idx.data_ptr<int32_t>();
  for (int64_t k = 0; k < idx.numel(); ++k)
    QUENCH_CHECK(p[k] >= 0 && p[k] < n, op, ": index ", p[k], " at position ", k,
                 " is out of range for ", what, " of shape ", shape_str(shape), " (expected 0 <= index < ",
                 n, ")");
}

// out[o, k, :] = x[o, idx[k], :]   x: [outer, n, inner] of esize-byte elements, out: [outer, K, inner]
void gather(const char* x, const int32_t* idx, char* out, int64_t outer, int64_t n, int64_t K,
            int64_t inner, size_t esize) {
  const size_t row = static_cast<size_t>(inner) * esize;
  kernels::parallel_for(outer * K, detail::row_grain(inner), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / K, k = t % K;
      std::memcpy(out + t * row, x + (o * n + idx[k]) * row, row);
    }
  });
}

// gx[o, idx[k], :] += g[o, k, :] with gx zeroed first. Threads split the columns (blocks of 64),
// so every element of gx has one owner that adds its terms in k order: no races, and the result does
// not depend on the thread count.
void scatter_add(const float* g, const int32_t* idx, float* gx, int64_t outer, int64_t n, int64_t K,
                 int64_t inner) {
  std::memset(gx, 0, static_cast<size_t>(outer * n * inner) * sizeof(float));
  constexpr int64_t kBlock = 64;
  const int64_t nb = (inner + kBlock - 1) / kBlock;
  kernels::parallel_for(outer * nb, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, K * kBlock)),
                        [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / nb, c0 = (t % nb) * kBlock, c1 = std::min(inner, c0 + kBlock);
      for (int64_t k = 0; k < K; ++k) {
        float* dst = gx + (o * n + idx[k]) * inner;
        const float* src = g + (o * K + k) * inner;
        for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
      }
    }
  });
}

// out[..., :] = weight[indices[...], :]   weight: [num, dim], indices: int32 any shape, out: [..., dim]
struct EmbeddingFn : Function<EmbeddingFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& weight_in, const Tensor& indices_in,
                        int64_t padding_idx) {
    check_dtype(weight_in, kFloat32, "embedding", "weight");
    check_dtype(indices_in, kInt32, "embedding", "indices");
    QUENCH_CHECK(weight_in.dim() == 2, "embedding: expected a 2-D weight [num_embeddings, dim], got shape ",
                 shape_str(weight_in.sizes()));
    Tensor w = weight_in.contiguous(), idx = indices_in.contiguous();
    check_indices(idx, w.size(0), "embedding", "a weight", w.sizes());
    QUENCH_CHECK(padding_idx >= -1 && padding_idx < w.size(0), "embedding: padding_idx ", padding_idx,
                 " is out of range for a weight of shape ", shape_str(w.sizes()), " (expected -1 for none or 0 <= padding_idx < ",
                 w.size(0), ")");
    Shape out_shape = idx.sizes();
    out_shape.push_back(w.size(1));
    Tensor out = Tensor::empty(out_shape, kFloat32);
    gather(static_cast<const char*>(w.raw_data()), idx.data_ptr<int32_t>(),
           static_cast<char*>(out.raw_data()), 1, w.size(0), idx.numel(), w.size(1), sizeof(float));
    ctx->save_for_backward({idx});
    ctx->saved_data["weight_shape"] = w.sizes();
    ctx->saved_data["padding_idx"] = padding_idx;
    return out;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    Tensor idx = ctx->get_saved_variables()[0];
    const Shape ws = std::get<Shape>(ctx->saved_data["weight_shape"]);
    Tensor gc = g[0].contiguous();
    Tensor gw = Tensor::empty(ws, kFloat32);
    scatter_add(gc.data_ptr<float>(), idx.data_ptr<int32_t>(), gw.data_ptr<float>(), 1, ws[0],
                idx.numel(), ws[1]);
    // torch.nn.Embedding(padding_idx = p): the padding row gets no gradient, so it stays as initialized.
    const int64_t pad = std::get<int64_t>(ctx->saved_data["padding_idx"]);
    if (pad >= 0) std::memset(gw.data_ptr<float>() + pad * ws[1], 0, static_cast<size_t>(ws[1]) * sizeof(float));
    return {gw, Tensor(), Tensor()};
  }
};

// out = x.index_select(dim, indices)   x: [..., n, ...], indices: int32 [K], out: [..., K, ...]
struct IndexSelectFn : Function<IndexSelectFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x_in, int64_t dim, const Tensor& indices_in) {
    check_defined(x_in, "index_select", "input");
    check_dtype(indices_in, kInt32, "index_select", "indices");
    QUENCH_CHECK(indices_in.dim() <= 1, "index_select: expected 1-D indices, got shape ",
                 shape_str(indices_in.sizes()));
    dim = wrap_dim(dim, x_in.dim(), "index_select");
    Tensor x = x_in.contiguous(), idx = indices_in.contiguous();
    const detail::DimLayout l = detail::dim_layout(x.sizes(), dim);
    check_indices(idx, l.n, "index_select", "dim " + std::to_string(dim) + " of an input", x.sizes());
    const int64_t K = idx.numel();
    Shape out_shape = x.sizes();
    if (x.dim() > 0) out_shape[dim] = K;
    Tensor out = Tensor::empty(out_shape, x.dtype());
    gather(static_cast<const char*>(x.raw_data()), idx.data_ptr<int32_t>(),
           static_cast<char*>(out.raw_data()), l.outer, l.n, K, l.inner, element_size(x.dtype()));
    ctx->save_for_backward({idx});
    ctx->saved_data["shape"] = x.sizes();
    ctx->saved_data["dim"] = dim;
    return out;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    Tensor idx = ctx->get_saved_variables()[0];
    const Shape shape = std::get<Shape>(ctx->saved_data["shape"]);
    const detail::DimLayout l = detail::dim_layout(shape, std::get<int64_t>(ctx->saved_data["dim"]));
    Tensor gc = g[0].contiguous();
    Tensor gx = Tensor::empty(shape, kFloat32);
    scatter_add(gc.data_ptr<float>(), idx.data_ptr<int32_t>(), gx.data_ptr<float>(), l.outer, l.n,
                idx.numel(), l.inner);
    return {gx, Tensor()};
  }
};

}  // namespace

Tensor embedding(const Tensor& weight, const Tensor& indices, int64_t padding_idx) {
  return EmbeddingFn::apply(weight, indices, padding_idx);
}
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& indices) {
  return IndexSelectFn::apply(x, dim, indices);
}

}  // namespace quench
