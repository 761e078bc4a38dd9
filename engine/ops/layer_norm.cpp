// layer_norm over the trailing normalized_shape: fused forward (mean and rstd saved per row) and
// fused backward for x, weight and bias (the formulas of PyTorch's native_layer_norm_backward).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "engine/autograd.hpp"
#include "engine/ops/column_sums.hpp"
#include "engine/ops/layer_norm_rows.hpp"
#include "engine/ops/nn_common.hpp"
#include "engine/ops/nn_ops.hpp"
#include "engine/ops/row_math.hpp"
#include "kernels/isa.hpp"

namespace quench {
namespace {

using autograd::AutogradContext;
using autograd::Function;

// Rows the forward handles together: their sums' dependency chains interleave (one row's adds
// wait on each other's latency; two rows' do not). Four rows' accumulators no longer fit the 16
// ymm registers of the AVX2 path and spilled (on the AVX-512 path, 4 or 8 rows measured no faster
// than 2). (Grouping the backward's sums per row measured slower: it stays one row at a time.)
constexpr int kRowsForward = 2;

// The forward's sums for R rows at once, in float: element j goes to lane j % 16, each lane adds
// in j order and the lanes are added by halves at the end (8 + 8, 4 + 4, 2 + 2, 1 + 1), so the
// result is a function of n alone on every target (a zmm, two ymm or four xmm per row).
// First pass: s = sum_j x[j] gives a first mean m. Second pass, on d = x - m: sum_j d and
// sum_j d^2. The mean is m + sum(d) / n (m's own rounding, large when the row sits far from zero,
// comes back through sum(d)) and the variance sum(d^2) / n - (sum(d) / n)^2 never cancels: mean
// and rstd within a few float ulps (16 float lanes of 8 values each for a row of 128) at half the
// cost of the double sums used before. (Deviations beyond ~1e19 would overflow d^2 in float.)
// (The helpers taking these vectors are always inlined into their callers, so no call passes one in
// registers and the ABI note the compiler gives for baseline code does not apply.)
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpsabi"
#elif defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
using float16v = float __attribute__((vector_size(64)));
using float8v = float __attribute__((vector_size(32)));
using float4v = float __attribute__((vector_size(16)));
constexpr int kLanes = 16;

inline QUENCH_ROW_INLINE float lanes_total(float16v a) {
  const float8v h = __builtin_shufflevector(a, a, 0, 1, 2, 3, 4, 5, 6, 7) +
                    __builtin_shufflevector(a, a, 8, 9, 10, 11, 12, 13, 14, 15);
  const float4v q = __builtin_shufflevector(h, h, 0, 1, 2, 3) + __builtin_shufflevector(h, h, 4, 5, 6, 7);
  return (q[0] + q[2]) + (q[1] + q[3]);
}

template <int R>
inline QUENCH_ROW_INLINE void row_sums(const float* x, int64_t n, float* s) {
  float16v a[R];
  for (int i = 0; i < R; ++i) a[i] = float16v{};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int i = 0; i < R; ++i) {
      float16v v;
      std::memcpy(&v, x + i * n + j, sizeof v);
      a[i] += v;
    }
  for (int i = 0; i < R; ++i) {
    for (int64_t u = j, k = 0; u < n; ++u, ++k) a[i][k] += x[i * n + u];
    s[i] = lanes_total(a[i]);
  }
}

template <int R>
inline QUENCH_ROW_INLINE void deviation_sums(const float* x, int64_t n, const float* m, float* d1, float* d2) {
  float16v a[R], b[R];
  for (int i = 0; i < R; ++i) a[i] = b[i] = float16v{};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int i = 0; i < R; ++i) {
      float16v v;
      std::memcpy(&v, x + i * n + j, sizeof v);
      v = v - m[i];
      a[i] += v;
      b[i] += v * v;
    }
  for (int i = 0; i < R; ++i) {
    for (int64_t u = j, k = 0; u < n; ++u, ++k) {
      const float v = x[i * n + u] - m[i];
      a[i][k] += v;
      b[i][k] += v * v;
    }
    d1[i] = lanes_total(a[i]);
    d2[i] = lanes_total(b[i]);
  }
}

// The backward's two row sums in one pass, in the same float lanes: dsc = sum_j (g[j] * w[j]) * (x[j] - mu)
// and dbs = sum_j g[j] * w[j] (without w: g[j] alone). x is centred first, so dsc needs no
// cancelling subtraction of mu * dbs afterwards.
inline QUENCH_ROW_INLINE void backward_sums(const float* g, const float* w, const float* x, float mu, int64_t n,
                                            float& dsc, float& dbs) {
  float16v a{}, b{};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    float16v gw, xv;
    std::memcpy(&gw, g + j, sizeof gw);
    std::memcpy(&xv, x + j, sizeof xv);
    if (w) {
      float16v wv;
      std::memcpy(&wv, w + j, sizeof wv);
      gw = gw * wv;
    }
    a += gw * (xv - mu);
    b += gw;
  }
  for (int k = 0; j < n; ++j, ++k) {
    float gw = g[j];
    if (w) gw = gw * w[j];
    a[k] += gw * (x[j] - mu);
    b[k] += gw;
  }
  dsc = lanes_total(a);
  dbs = lanes_total(b);
}

// fn.template operator()<R>(r) for rows [r0, r1): groups of G rows, then single rows.
template <int G, class F>
inline QUENCH_ROW_INLINE void for_row_groups(int64_t r0, int64_t r1, F fn) {
  int64_t r = r0;
  for (; r + G <= r1; r += G) fn.template operator()<G>(r);
  for (; r < r1; ++r) fn.template operator()<1>(r);
}

}  // namespace

void detail::layer_norm_rows(const float* px, int64_t M, int64_t N, const float* pw, const float* pb, double eps, float* py,
                     float* pm, float* pr) {
  auto rows = [&]() QUENCH_ROW_INLINE {
    for_row_groups<kRowsForward>(0, M, [&]<int R>(int64_t rg) QUENCH_ROW_INLINE {
      const float* xg = px + rg * N;
      const double inv_n = 1.0 / static_cast<double>(N);
      float s[R], m0[R], d1[R], d2[R];
      row_sums<R>(xg, N, s);
      for (int i = 0; i < R; ++i) m0[i] = static_cast<float>(s[i] * inv_n);
      deviation_sums<R>(xg, N, m0, d1, d2);
      for (int i = 0; i < R; ++i) {
        const int64_t r = rg + i;
        const float* xr = xg + i * N;
        float* yr = py + r * N;
        const double shift = d1[i] * inv_n, var = std::max(0.0, d2[i] * inv_n - shift * shift);
        const double rs = 1.0 / std::sqrt(var + eps);
        const float m = static_cast<float>(m0[i] + shift), a = static_cast<float>(rs);
        if (pm) pm[r] = m;
        if (pr) pr[r] = a;
        // (x - mean) * rstd rather than x * rstd - mean * rstd: no cancellation, constant rows give 0.
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
  };
  detail::call_wide(rows);
}

namespace {

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
    kernels::parallel_for(M, detail::row_grain(N), [&](int64_t r0, int64_t r1) {
      detail::layer_norm_rows(px + r0 * N, r1 - r0, N, pw, pb, eps, py + r0 * N, pm + r0, pr + r0);
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
      kernels::parallel_for(M, detail::row_grain(N), [&](int64_t r0, int64_t r1) {
        detail::call_wide([&]() QUENCH_ROW_INLINE {
          for (int64_t r = r0; r < r1; ++r) {
            const float* xr = px + r * N;
            const float* gr = pg + r * N;
            float* dr = pd + r * N;
            // dsc = sum(g * w * (x - mean)), dbs = sum(g * w); dx = rstd * g * w + b * (x - mean) + c,
            // x centred again so that b * x and b * mean never cancel.
            float dsc, dbs;
            const float m = pm[r];
            backward_sums(gr, pw, xr, m, N, dsc, dbs);
            const double rs = pr[r];
            const double bb = -static_cast<double>(dsc) * rs * rs * rs * inv_n;
            const double cc = -static_cast<double>(dbs) * rs * inv_n;
            const float a = static_cast<float>(rs), b = static_cast<float>(bb), c = static_cast<float>(cc);
            if (pw) {
              for (int64_t j = 0; j < N; ++j) dr[j] = a * gr[j] * pw[j] + b * (xr[j] - m) + c;
            } else {
              for (int64_t j = 0; j < N; ++j) dr[j] = a * gr[j] + b * (xr[j] - m) + c;
            }
          }
        });
      });
    }
    const bool need_w = ctx->needs_input_grad(1), need_b = ctx->needs_input_grad(2);
    if (need_w || need_b) {
      // dw[j] = sum_r g[r][j] * ((x[r][j] - mean[r]) * rstd[r]), db[j] = sum_r g[r][j], in double.
      const Shape& wshape = std::get<Shape>(ctx->saved_data["normalized_shape"]);
      if (need_w) dw = Tensor::empty(wshape, kFloat32);
      if (need_b) db = Tensor::empty(wshape, kFloat32);
      float* out[2] = {need_w ? dw.data_ptr<float>() : nullptr, need_b ? db.data_ptr<float>() : nullptr};
      detail::column_sums<2>(
          M, N,
          [&](int64_t r, int64_t j0, int64_t j1, double* acc) QUENCH_ROW_INLINE {
            const float* xr = px + r * N;
            const float* gr = pg + r * N;
            const float mu = pm[r], rs = pr[r];
            for (int64_t j = j0; j < j1; ++j) {
              acc[j] += static_cast<double>(gr[j]) * ((xr[j] - mu) * rs);
              acc[N + j] += gr[j];
            }
          },
          [&](int s, int64_t j, double total) {
            if (out[s]) out[s][j] = static_cast<float>(total);
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
