// layer_norm over the trailing normalized_shape: fused forward (mean and rstd saved per row) and
// fused backward for x, weight and bias (the formulas of PyTorch's native_layer_norm_backward).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/autograd.hpp"
#include "engine/ops/nn_common.hpp"
#include "engine/ops/nn_ops.hpp"
#include "engine/ops/row_math.hpp"
#include "kernels/isa.hpp"

namespace quench {
namespace {

using autograd::AutogradContext;
using autograd::Function;

// Rows the forward handles together: their sums' dependency chains interleave (one row's adds
// wait on each other's latency; four rows' do not), which is where a 128-wide row spends its time.
// (Grouping the backward's two sums per row measured slower: it stays one row at a time.)
constexpr int kRowsForward = 4;

// The forward's two sums for R rows at once, in detail::lane_sum's lanes (row_math.hpp: element j
// in lane j % 4, lanes added pairwise at the end): out[i] = sum_j x[i][j] or, kDeviation,
// sum_j (x[i][j] - c[i])^2, in double. Written on explicit 4-double vectors so every target keeps
// those lanes and runs them as whole vectors (left to itself the compiler interleaved the rows
// instead, two doubles at a time). Results do not depend on how rows are grouped.
using double4 = double __attribute__((vector_size(32)));
using float4 = float __attribute__((vector_size(16)));

inline QUENCH_ROW_INLINE double4 widen4(const float* p) {
  float4 f;
  std::memcpy(&f, p, sizeof f);
  return __builtin_convertvector(f, double4);
}
inline QUENCH_ROW_INLINE double lanes_total(double4 a) { return (a[0] + a[1]) + (a[2] + a[3]); }

template <int R, bool kDeviation>
inline QUENCH_ROW_INLINE void lane_sums(const float* x, int64_t n, const double* c, double* out) {
  double4 a[R];
  for (int i = 0; i < R; ++i) a[i] = double4{0.0, 0.0, 0.0, 0.0};
  int64_t j = 0;
  for (; j + 4 <= n; j += 4)
    for (int i = 0; i < R; ++i) {
      double4 v = widen4(x + i * n + j);
      if constexpr (kDeviation) {
        v = v - c[i];
        v = v * v;
      }
      a[i] += v;
    }
  for (int i = 0; i < R; ++i) {
    for (int64_t u = j, k = 0; u < n; ++u, ++k) {
      double v = x[i * n + u];
      if constexpr (kDeviation) {
        v = v - c[i];
        v = v * v;
      }
      a[i][k] += v;
    }
    out[i] = lanes_total(a[i]);
  }
}

// The backward's two row sums in one pass, in the same lanes: ds = sum_j (g[j] * w[j]) * x[j] and
// dbs = sum_j g[j] * w[j] in double (without w: g[j] alone).
inline QUENCH_ROW_INLINE void backward_sums(const float* g, const float* w, const float* x, int64_t n, double& ds,
                                            double& dbs) {
  double4 a = {0.0, 0.0, 0.0, 0.0}, b = a;
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    double4 gw = widen4(g + j);
    if (w) gw = gw * widen4(w + j);
    a += gw * widen4(x + j);
    b += gw;
  }
  for (int k = 0; j < n; ++j, ++k) {
    double gw = g[j];
    if (w) gw = gw * w[j];
    a[k] += gw * x[j];
    b[k] += gw;
  }
  ds = lanes_total(a);
  dbs = lanes_total(b);
}

// Columns of the weight and bias gradients a register block holds: 16 doubles each in 4 + 4 ymm.
constexpr int64_t kGradCols = 16;

// dw[j] += g[j] * ((x[j] - mu) * rs) and db[j] += g[j] down rows [0, M) for nc <= kGradCols columns
// starting at c0 (each column its own sum in row order, in double).
template <int64_t NC>
inline QUENCH_ROW_INLINE void column_grads(const float* px, const float* pg, const float* pm, const float* pr,
                                           int64_t M, int64_t N, int64_t c0, int64_t nc, double* dw, double* db) {
  const int64_t n = NC > 0 ? NC : nc;
  double aw[kGradCols] = {}, ab[kGradCols] = {};
  for (int64_t r = 0; r < M; ++r) {
    const float* xr = px + r * N + c0;
    const float* gr = pg + r * N + c0;
    const float mu = pm[r], rs = pr[r];
    if (r + 16 < M) {  // the rows are N floats apart: ask for the block's lines 16 rows ahead
      __builtin_prefetch(xr + 16 * N);
      __builtin_prefetch(gr + 16 * N);
    }
    for (int64_t j = 0; j < n; ++j) {
      aw[j] += static_cast<double>(gr[j]) * ((xr[j] - mu) * rs);
      ab[j] += gr[j];
    }
  }
  for (int64_t j = 0; j < n; ++j) dw[j] = aw[j], db[j] = ab[j];
}

// fn.template operator()<R>(r) for rows [r0, r1): groups of G rows, then single rows.
template <int G, class F>
inline QUENCH_ROW_INLINE void for_row_groups(int64_t r0, int64_t r1, F fn) {
  int64_t r = r0;
  for (; r + G <= r1; r += G) fn.template operator()<G>(r);
  for (; r < r1; ++r) fn.template operator()<1>(r);
}

// y = (x - mean) * rstd * w + b   x: [M, N] (N = numel(normalized_shape)), w, b: [N], y: like x
struct LayerNormFn : Function<LayerNormFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x_in, const Tensor& weight_in,
                        const Tensor& bias_in, const Shape& normalized_shape, double eps) {
    check_dtype(x_in, kFloat32, "layer_norm", "input");
    const int64_t k = static_cast<int64_t>(normalized_shape.size());
    bool trailing = k >= 1 && x_in.dim() >= k;
    for (int64_t i = 0; trailing && i < k; ++i)
      trailing = x_in.sizes()[x_in.dim() - k + i] == normalized_shape[i];
    QUENCH_CHECK(trailing, "layer_norm: normalized_shape ", shape_str(normalized_shape),
                 " must be non-empty and equal the trailing dims of the input of shape ",
                 shape_str(x_in.sizes()));
    const Tensor* params[2] = {&weight_in, &bias_in};
    const char* names[2] = {"weight", "bias"};
    for (int i = 0; i < 2; ++i) {
      if (!params[i]->defined()) continue;
      check_dtype(*params[i], kFloat32, "layer_norm", names[i]);
      QUENCH_CHECK(params[i]->sizes() == normalized_shape, "layer_norm: ", names[i], " of shape ",
                   shape_str(params[i]->sizes()), " does not match normalized_shape ",
                   shape_str(normalized_shape));
    }
    QUENCH_CHECK(eps >= 0.0, "layer_norm: eps must be >= 0, got ", eps);
    Tensor x = x_in.contiguous();
    Tensor w = weight_in.defined() ? weight_in.contiguous() : Tensor();
    Tensor b = bias_in.defined() ? bias_in.contiguous() : Tensor();
    const int64_t N = shape_numel(normalized_shape), M = N ? x.numel() / N : 0;
    Tensor y = Tensor::empty(x.sizes(), kFloat32);
    Tensor mean = Tensor::empty({M}, kFloat32), rstd = Tensor::empty({M}, kFloat32);
    const float* px = x.data_ptr<float>();
    const float* pw = w.defined() ? w.data_ptr<float>() : nullptr;
    const float* pb = b.defined() ? b.data_ptr<float>() : nullptr;
    float* py = y.data_ptr<float>();
    float* pm = mean.data_ptr<float>();
    float* pr = rstd.data_ptr<float>();
    const bool avx2 = kernels::active_isa() >= kernels::Isa::avx2;
    kernels::parallel_for(M, detail::row_grain(N), [&](int64_t r0, int64_t r1) {
      detail::call_isa(avx2, [&]() QUENCH_ROW_INLINE {
        for_row_groups<kRowsForward>(r0, r1, [&]<int R>(int64_t rg) QUENCH_ROW_INLINE {
          const float* xg = px + rg * N;
          // Two passes in double: the variance never goes negative and rows of 512 keep full precision.
          double mu[R], v[R];
          lane_sums<R, false>(xg, N, nullptr, mu);
          for (int i = 0; i < R; ++i) mu[i] /= static_cast<double>(N);
          lane_sums<R, true>(xg, N, mu, v);
          for (int i = 0; i < R; ++i) {
            const int64_t r = rg + i;
            const float* xr = xg + i * N;
            float* yr = py + r * N;
            const double rs = 1.0 / std::sqrt(v[i] / static_cast<double>(N) + eps);
            pm[r] = static_cast<float>(mu[i]);
            pr[r] = static_cast<float>(rs);
            // (x - mean) * rstd rather than x * rstd - mean * rstd: no cancellation, constant rows give 0.
            const float m = static_cast<float>(mu[i]), a = static_cast<float>(rs);
            if (pw && pb) {
              for (int64_t j = 0; j < N; ++j) yr[j] = (xr[j] - m) * a * pw[j] + pb[j];
            } else if (pw) {
              for (int64_t j = 0; j < N; ++j) yr[j] = (xr[j] - m) * a * pw[j];
            } else if (pb) {
              for (int64_t j = 0; j < N; ++j) yr[j] = (xr[j] - m) * a + pb[j];
            } else {
              for (int64_t j = 0; j < N; ++j) yr[j] = (xr[j] - m) * a;
            }
          }
        });
      });
    });
    ctx->save_for_backward({x, w, mean, rstd});
    ctx->saved_data["N"] = N;
    ctx->saved_data["normalized_shape"] = normalized_shape;
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto v = ctx->get_saved_variables();
    const Tensor &x = v[0], &w = v[1], &mean = v[2], &rstd = v[3];
    const int64_t N = std::get<int64_t>(ctx->saved_data["N"]), M = mean.numel();
    Tensor gc = g[0].contiguous();
    const float* px = x.data_ptr<float>();
    const float* pg = gc.data_ptr<float>();
    const float* pw = w.defined() ? w.data_ptr<float>() : nullptr;
    const float* pm = mean.data_ptr<float>();
    const float* pr = rstd.data_ptr<float>();
    Tensor dx, dw, db;
    if (ctx->needs_input_grad(0)) {
      dx = Tensor::empty(x.sizes(), kFloat32);
      float* pd = dx.data_ptr<float>();
      const double inv_n = 1.0 / static_cast<double>(N);
      const bool avx2 = kernels::active_isa() >= kernels::Isa::avx2;
      kernels::parallel_for(M, detail::row_grain(N), [&](int64_t r0, int64_t r1) {
        detail::call_isa(avx2, [&]() QUENCH_ROW_INLINE {
          for (int64_t r = r0; r < r1; ++r) {
            const float* xr = px + r * N;
            const float* gr = pg + r * N;
            float* dr = pd + r * N;
            // ds = sum(g * w * x), dbs = sum(g * w); dx = rstd * g * w + b * x + c
            double ds, dbs;
            backward_sums(gr, pw, xr, N, ds, dbs);
            const double mu = pm[r], rs = pr[r];
            const double bb = (dbs * mu - ds) * rs * rs * rs * inv_n;
            const double cc = -bb * mu - dbs * rs * inv_n;
            const float a = static_cast<float>(rs), b = static_cast<float>(bb), c = static_cast<float>(cc);
            if (pw) {
              for (int64_t j = 0; j < N; ++j) dr[j] = a * gr[j] * pw[j] + b * xr[j] + c;
            } else {
              for (int64_t j = 0; j < N; ++j) dr[j] = a * gr[j] + b * xr[j] + c;
            }
          }
        });
      });
    }
    const bool need_w = ctx->needs_input_grad(1), need_b = ctx->needs_input_grad(2);
    if (need_w || need_b) {
      // Column sums over rows, split over columns so each sum has one owner and a fixed order.
      const Shape& wshape = std::get<Shape>(ctx->saved_data["normalized_shape"]);
      if (need_w) dw = Tensor::empty(wshape, kFloat32);
      if (need_b) db = Tensor::empty(wshape, kFloat32);
      float* pdw = need_w ? dw.data_ptr<float>() : nullptr;
      float* pdb = need_b ? db.data_ptr<float>() : nullptr;
      const bool avx2 = kernels::active_isa() >= kernels::Isa::avx2;
      // Blocks of kGradCols columns whose sums stay in registers while the rows stream past.
      kernels::parallel_for((N + kGradCols - 1) / kGradCols, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t blk = b0; blk < b1; ++blk) {
          const int64_t c0 = blk * kGradCols, nc = std::min(kGradCols, N - c0);
          double aw[kGradCols], ab[kGradCols];
          detail::call_isa(avx2, [&]() QUENCH_ROW_INLINE {
            if (nc == kGradCols)
              column_grads<kGradCols>(px, pg, pm, pr, M, N, c0, nc, aw, ab);
            else
              column_grads<0>(px, pg, pm, pr, M, N, c0, nc, aw, ab);
          });
          for (int64_t j = 0; j < nc; ++j) {
            if (need_w) pdw[c0 + j] = static_cast<float>(aw[j]);
            if (need_b) pdb[c0 + j] = static_cast<float>(ab[j]);
          }
        }
      });
    }
    return {dx, dw, db};
  }
};

}  // namespace

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  return LayerNormFn::apply(x, weight, bias, normalized_shape, eps);
}

}  // namespace quench
