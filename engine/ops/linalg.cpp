// matmul and linear on kernels::sgemm. Transposed views are passed to the GEMM as transposed
// operands instead of being copied, so the backward products (g @ W, g^T @ x) cost no copies.
#include "engine/ops/linalg.hpp"

#include <algorithm>

#include "engine/autograd.hpp"
#include "engine/ops/creation.hpp"
#include "engine/ops/reduce.hpp"
#include "kernels/gemm.hpp"
#include "kernels/parallel.hpp"

namespace quench {
namespace {

using autograd::AutogradContext;
using autograd::Function;

// A matrix as the GEMM sees it: the last two dims of a tensor, row-major or transposed.
struct GemmOperand {
  Tensor t;      // keeps the data alive; maybe a contiguous copy
  bool trans;    // stored as [cols, rows]
  int64_t ld;
};

GemmOperand as_operand(const Tensor& x) {
  const int64_t n = x.dim();
  const int64_t rows = x.sizes()[n - 2], cols = x.sizes()[n - 1];
  const int64_t rs = x.strides()[n - 2], cs = x.strides()[n - 1];
  if (cs == 1 && (rs >= cols || rows == 1)) return {x, false, rows == 1 ? cols : rs};
  if (rs == 1 && (cs >= rows || cols == 1)) return {x, true, cols == 1 ? rows : cs};
  Tensor c = x.contiguous();
  return {c, false, cols};
}

// out[batch..., M, N] = a[batch..., M, K] @ b[batch..., K, N]; a and b already expanded to the
// same batch shape (batch strides may be anything, including 0).
void batched_gemm(const Tensor& a, const Tensor& b, Tensor& out) {
  const int64_t n = a.dim();
  const int64_t M = a.sizes()[n - 2], K = a.sizes()[n - 1], N = b.sizes()[n - 1];
  GemmOperand A = as_operand(a), B = as_operand(b);
  Shape batch(a.sizes().begin(), a.sizes().end() - 2);
  const int64_t nb = shape_numel(batch);
  const float* pa = A.t.data_ptr<float>();
  const float* pb = B.t.data_ptr<float>();
  float* pc = out.data_ptr<float>();
  if (K == 0) {
    out.zero_();
    return;
  }
  auto offset = [&](const Tensor& t, int64_t i) {
    int64_t off = 0;
    for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
      off += (i % batch[d]) * t.strides()[d];
      i /= batch[d];
    }
    return off;
  };
  if (nb == 1) {
    kernels::sgemm(A.trans, B.trans, M, N, K, 1.f, pa, A.ld, pb, B.ld, 0.f, pc, N);
    return;
  }
  kernels::parallel_for(nb, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      kernels::sgemm(A.trans, B.trans, M, N, K, 1.f, pa + offset(A.t, i), A.ld, pb + offset(B.t, i),
                     B.ld, 0.f, pc + i * M * N, N);
  });
}

Tensor matmul_nd(const Tensor& a, const Tensor& b) {
  const int64_t na = a.dim(), nb = b.dim();
  const int64_t M = a.sizes()[na - 2], K = a.sizes()[na - 1];
  const int64_t K2 = b.sizes()[nb - 2], N = b.sizes()[nb - 1];
  QUENCH_CHECK(K == K2, "matmul: inner dimensions differ: ", shape_str(a.sizes()), " @ ",
               shape_str(b.sizes()), "; expected the last dim of the first (", K,
               ") to equal the second-to-last of the second (", K2, ")");
  Shape ba(a.sizes().begin(), a.sizes().end() - 2), bb(b.sizes().begin(), b.sizes().end() - 2);
  Shape batch = broadcast_shapes(ba, bb, "matmul");
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = Tensor::empty(out_shape, kFloat32);
  // A shared 2-D right operand with a contiguous left operand: one GEMM over all rows.
  if (nb == 2 && a.is_contiguous()) {
    GemmOperand B = as_operand(b);
    kernels::sgemm(false, B.trans, a.numel() / std::max<int64_t>(K, 1), N, K, 1.f,
                   a.data_ptr<float>(), K, B.t.data_ptr<float>(), B.ld, 0.f, out.data_ptr<float>(), N);
    if (K == 0) out.zero_();
    return out;
  }
  Shape ea = batch, eb = batch;
  ea.push_back(M);
  ea.push_back(K);
  eb.push_back(K);
  eb.push_back(N);
  batched_gemm(a.expand(ea), b.expand(eb), out);
  return out;
}

// y = a @ b   a:[..., M, K]  b:[..., K, N]  (both at least 2-D here)
struct MatmulFn : Function<MatmulFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, const Tensor& b) {
    check_dtype(a, kFloat32, "matmul", "first input");
    check_dtype(b, kFloat32, "matmul", "second input");
    ctx->save_for_backward({a, b});
    return matmul_nd(a, b);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto v = ctx->get_saved_variables();
    const Tensor &a = v[0], &b = v[1];
    Tensor ga, gb;
    if (ctx->needs_input_grad(0)) ga = sum_to(matmul_nd(g[0], b.transpose(-1, -2)), a.sizes());
    if (ctx->needs_input_grad(1)) {
      if (b.dim() == 2 && a.dim() > 2) {
        // Shared weight: one GEMM over all rows instead of a batch of products summed afterwards.
        const int64_t K = a.sizes().back(), N = b.sizes().back();
        gb = matmul_nd(a.reshape({-1, K}).t(), g[0].reshape({-1, N}));
      } else {
        gb = sum_to(matmul_nd(a.transpose(-1, -2), g[0]), b.sizes());
      }
    }
    return {ga, gb};
  }
};

// y = x W^T + b   x:[R, in]  W:[out, in]  b:[out]
struct LinearFn : Function<LinearFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& w, const Tensor& bias) {
    const int64_t in = w.sizes()[1], out_f = w.sizes()[0], rows = x.sizes()[0];
    ctx->save_for_backward({x, w});
    Tensor y = Tensor::empty({rows, out_f}, kFloat32);
    Tensor bc = bias.defined() ? bias.contiguous() : Tensor();  // added in the GEMM's epilogue
    GemmOperand W = as_operand(w);
    kernels::sgemm(false, !W.trans, rows, out_f, in, 1.f, x.data_ptr<float>(), in,
                   W.t.data_ptr<float>(), W.ld, 0.f, y.data_ptr<float>(), out_f,
                   bc.defined() ? bc.data_ptr<float>() : nullptr);
    return y;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto v = ctx->get_saved_variables();
    const Tensor &x = v[0], &w = v[1];
    Tensor gx, gw, gb;
    if (ctx->needs_input_grad(0)) gx = matmul_nd(g[0], w);             // dX = dY W      (NN)
    if (ctx->needs_input_grad(1)) gw = matmul_nd(g[0].t(), x);         // dW = dY^T X    (TN)
    if (ctx->needs_input_grad(2)) gb = sum(g[0], {0});                 // db = sum_rows dY
    return {gx, gw, gb};
  }
};

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_defined(a, "matmul", "first input");
  check_defined(b, "matmul", "second input");
  QUENCH_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: both operands need at least 1 dim, got ",
               shape_str(a.sizes()), " @ ", shape_str(b.sizes()));
  if (a.dim() == 1 && b.dim() == 1) {
    QUENCH_CHECK(a.size(0) == b.size(0), "matmul: inner dimensions differ: ", shape_str(a.sizes()),
                 " @ ", shape_str(b.sizes()), "; expected vectors of the same length");
    return MatmulFn::apply(a.unsqueeze(0), b.unsqueeze(1)).reshape({});
  }
  if (a.dim() == 1) return MatmulFn::apply(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return MatmulFn::apply(a, b.unsqueeze(1)).squeeze(-1);
  return MatmulFn::apply(a, b);
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_dtype(x, kFloat32, "linear", "input");
  check_dtype(weight, kFloat32, "linear", "weight");
  QUENCH_CHECK(weight.dim() == 2, "linear: expected a 2-D weight [out, in], got ",
               shape_str(weight.sizes()));
  QUENCH_CHECK(x.dim() >= 1 && x.sizes().back() == weight.sizes()[1], "linear: input of shape ",
               shape_str(x.sizes()), " does not match weight of shape ", shape_str(weight.sizes()),
               "; expected the last input dim to equal in_features (", weight.sizes()[1], ")");
  if (bias.defined()) {
    check_dtype(bias, kFloat32, "linear", "bias");
    QUENCH_CHECK(bias.dim() == 1 && bias.sizes()[0] == weight.sizes()[0], "linear: bias of shape ",
                 shape_str(bias.sizes()), " does not match weight of shape ",
                 shape_str(weight.sizes()), "; expected [", weight.sizes()[0], "]");
  }
  Shape out_shape = x.sizes();
  out_shape.back() = weight.sizes()[0];
  Tensor x2 = x.reshape({-1, weight.sizes()[1]}).contiguous();
  return LinearFn::apply(x2, weight, bias).view(out_shape);
}

Tensor Tensor::matmul(const Tensor& other) const { return quench::matmul(*this, other); }

}  // namespace quench
