// Building blocks for element-wise ops (internal to engine/): map a function over one, two (float)
// or K (any dtypes) broadcast operands into a new contiguous tensor.
#pragma once
#include <tuple>
#include <utility>

#include "engine/strided.hpp"
#include "engine/tensor.hpp"
#include "kernels/isa.hpp"

namespace quench::detail {

// The contiguous inner loop of every map, out[i] = f(x[i]...), compiled for the baseline ISA and
// again with AVX2 and FMA enabled (8 floats a step instead of 4; f is inlined into each). The build
// never contracts a * b + c (-ffp-contract=off) and f's FMAs are explicit (kernels/fmadd.hpp), so
// both paths give the same bits.
template <class Out, class F, class... In>
void contiguous_loop_base(Out* o, int64_t n, const F& f, const In*... x) {
  for (int64_t i = 0; i < n; ++i) o[i] = static_cast<Out>(f(x[i]...));
}
#if defined(__x86_64__)
template <class Out, class F, class... In>
__attribute__((target("avx2,fma"))) void contiguous_loop_avx2(Out* o, int64_t n, const F& f, const In*... x) {
  for (int64_t i = 0; i < n; ++i) o[i] = static_cast<Out>(f(x[i]...));
}
#endif
template <class Out, class F, class... In>
void contiguous_loop(bool avx2, Out* o, int64_t n, const F& f, const In*... x) {
#if defined(__x86_64__)
  if (avx2) {
    contiguous_loop_avx2(o, n, f, x...);
    return;
  }
#endif
  contiguous_loop_base(o, n, f, x...);
}
inline bool use_avx2() { return kernels::active_isa() >= kernels::Isa::avx2; }

// out[i] = f(a[i]) over float32 `a` (any strides); out is contiguous. Contiguous runs of n
// elements go to contig(o, x, n), strided ones to f.
template <class F, class Contig>
Tensor map_unary_with(const Tensor& a, const char* op, F f, Contig contig) {
  check_dtype(a, kFloat32, op, "input");
  Tensor out = Tensor::empty(a.sizes(), kFloat32);
  const Shape& so = out.strides();
  const Shape& sa = a.strides();
  float* po = out.data_ptr<float>();
  const float* pa = a.data_ptr<float>();
  for_each_row<2>(a.sizes(), {&so, &sa},
                  [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
                    float* o = po + off[0];
                    const float* x = pa + off[1];
                    if (st[1] == 1) {
                      contig(o, x, n);
                    } else {
                      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i * st[1]]);
                    }
                  });
  return out;
}

// map_unary_with f's own contiguous loop.
template <class F>
Tensor map_unary(const Tensor& a, const char* op, F f) {
  const bool avx2 = use_avx2();
  return map_unary_with(a, op, f, [&](float* o, const float* x, int64_t n) { contiguous_loop(avx2, o, n, f, x); });
}

// map_unary_with a kernels/ function rows(x, n, out) for the contiguous runs: one that gives f's
// bits on every ISA path (it dispatches itself).
template <class F, class Rows>
Tensor map_unary_rows(const Tensor& a, const char* op, F f, Rows rows) {
  return map_unary_with(a, op, f, [&](float* o, const float* x, int64_t n) { rows(x, n, o); });
}

// out[i] = f(a[i], b[i]) with a and b broadcast to a common shape; both float32. Runs where both
// are contiguous go to contig(o, x, y, n).
template <class F, class Contig>
Tensor map_binary_with(const Tensor& a_in, const Tensor& b_in, const char* op, F f, Contig contig) {
  check_dtype(a_in, kFloat32, op, "first input");
  check_dtype(b_in, kFloat32, op, "second input");
  Shape shape = broadcast_shapes(a_in.sizes(), b_in.sizes(), op);
  Tensor a = a_in.expand(shape), b = b_in.expand(shape);
  Tensor out = Tensor::empty(shape, kFloat32);
  const Shape& so = out.strides();
  const Shape& sa = a.strides();
  const Shape& sb = b.strides();
  float* po = out.data_ptr<float>();
  const float* pa = a.data_ptr<float>();
  const float* pb = b.data_ptr<float>();
  for_each_row<3>(shape, {&so, &sa, &sb},
                  [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& st) {
                    float* o = po + off[0];
                    const float* x = pa + off[1];
                    const float* y = pb + off[2];
                    if (st[1] == 1 && st[2] == 1) {
                      contig(o, x, y, n);
                    } else if (st[1] == 1 && st[2] == 0) {
                      const float yv = *y;
                      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], yv);
                    } else if (st[1] == 0 && st[2] == 1) {
                      const float xv = *x;
                      for (int64_t i = 0; i < n; ++i) o[i] = f(xv, y[i]);
                    } else {
                      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i * st[1]], y[i * st[2]]);
                    }
                  });
  return out;
}

// map_binary_with f's own contiguous loop.
template <class F>
Tensor map_binary(const Tensor& a, const Tensor& b, const char* op, F f) {
  const bool avx2 = use_avx2();
  return map_binary_with(a, b, op, f, [&](float* o, const float* x, const float* y, int64_t n) {
    contiguous_loop(avx2, o, n, f, x, y);
  });
}

// map_binary_with a kernels/ function rows(a, b, n, out), as map_unary_rows.
template <class F, class Rows>
Tensor map_binary_rows(const Tensor& a, const Tensor& b, const char* op, F f, Rows rows) {
  return map_binary_with(a, b, op, f, [&](float* o, const float* x, const float* y, int64_t n) { rows(x, y, n, o); });
}

// out[i] = f(in[0][i], in[1][i], ...) over K broadcast operands of C++ element types Ins... (dtypes
// are the caller's to check, with names the user knows: "condition", "mask"); out is contiguous Out.
// For mixed dtypes (u8 masks, comparisons) and fused backward kernels with three operands.
template <class Out, class... Ins, class F>
Tensor map_nary(const char* op, F f, const std::array<Tensor, sizeof...(Ins)>& in_raw) {
  constexpr size_t K = sizeof...(Ins);
  Shape shape = in_raw[0].sizes();
  for (size_t k = 1; k < K; ++k) shape = broadcast_shapes(shape, in_raw[k].sizes(), op);
  std::array<Tensor, K> in;
  for (size_t k = 0; k < K; ++k) in[k] = in_raw[k].expand(shape);
  Tensor out = Tensor::empty(shape, dtype_v<Out>);
  std::array<const Shape*, K + 1> st;
  st[0] = &out.strides();
  for (size_t k = 0; k < K; ++k) st[k + 1] = &in[k].strides();
  Out* po = out.data_ptr<Out>();
  const bool avx2 = use_avx2();
  [&]<size_t... I>(std::index_sequence<I...>) {
    const std::tuple<const Ins*...> base{in[I].template data_ptr<Ins>()...};
    for_each_row<K + 1>(shape, st, [&](const std::array<int64_t, K + 1>& off, int64_t n,
                                       const std::array<int64_t, K + 1>& s) {
      Out* o = po + off[0];
      const std::tuple<const Ins*...> x{std::get<I>(base) + off[I + 1]...};
      if (((s[I + 1] == 1) && ...)) {
        contiguous_loop(avx2, o, n, f, std::get<I>(x)...);
      } else {
        for (int64_t i = 0; i < n; ++i) o[i] = static_cast<Out>(f(std::get<I>(x)[i * s[I + 1]]...));
      }
    });
  }(std::make_index_sequence<K>{});
  return out;
}

}  // namespace quench::detail
