// Comparisons (u8 masks, no gradient), where, masked_fill, maximum and minimum. All broadcast.
#include <cmath>

#include "engine/autograd.hpp"
#include "engine/elementwise.hpp"
#include "engine/ops/pointwise.hpp"
#include "engine/ops/reduce.hpp"

namespace quench {
namespace {

using autograd::AutogradContext;
using autograd::Function;
using detail::map_nary;

enum class Cmp { eq, ne, lt, le, gt, ge };

template <Cmp C, class T>
inline uint8_t cmp(T x, T y) {
  if constexpr (C == Cmp::eq) return x == y;
  if constexpr (C == Cmp::ne) return x != y;
  if constexpr (C == Cmp::lt) return x < y;
  if constexpr (C == Cmp::le) return x <= y;
  if constexpr (C == Cmp::gt) return x > y;
  if constexpr (C == Cmp::ge) return x >= y;
}

// Mixed dtypes compare after promotion, as PyTorch: to float32 when either side is float, else to
// int32 (which holds every i8 / u8 value exactly).
template <Cmp C>
Tensor compare(const Tensor& a, const Tensor& b, const char* op) {
  check_defined(a, op, "first input");
  check_defined(b, op, "second input");
  NoGradGuard no_grad;
  DType t = a.dtype();
  if (a.dtype() != b.dtype()) t = (a.dtype() == kFloat32 || b.dtype() == kFloat32) ? kFloat32 : kInt32;
  Tensor x = a.dtype() == t ? a : a.to(t), y = b.dtype() == t ? b : b.to(t);
  return dispatch_dtype(t, [&](auto z) {
    using T = decltype(z);
    return map_nary<uint8_t, T, T>(op, [](T p, T q) { return cmp<C>(p, q); }, {x, y});
  });
}

// Against a scalar: a float tensor compares in float (the scalar rounded to float, as PyTorch does
// for a wrapped number); an integer tensor compares in double, so 2 > 1.5 holds.
template <Cmp C>
Tensor compare(const Tensor& a, double s, const char* op) {
  check_defined(a, op, "input");
  return dispatch_dtype(a.dtype(), [&](auto z) {
    using T = decltype(z);
    if constexpr (std::is_same_v<T, float>) {
      const float sf = static_cast<float>(s);
      return map_nary<uint8_t, float>(op, [sf](float p) { return cmp<C>(p, sf); }, {a});
    } else {
      return map_nary<uint8_t, T>(op, [s](T p) { return cmp<C>(static_cast<double>(p), s); }, {a});
    }
  });
}

// y = cond ? a : b  (all broadcast);  da = g where cond, db = g where !cond
struct WhereFn : Function<WhereFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& cond, const Tensor& a, const Tensor& b) {
    check_dtype(cond, kUInt8, "where", "condition");
    check_dtype(a, kFloat32, "where", "first value tensor");
    check_dtype(b, kFloat32, "where", "second value tensor");
    ctx->save_for_backward({cond});
    ctx->saved_data["a"] = a.sizes();
    ctx->saved_data["b"] = b.sizes();
    return map_nary<float, uint8_t, float, float>(
        "where", [](uint8_t c, float x, float y) { return c ? x : y; }, {cond, a, b});
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    Tensor cond = ctx->get_saved_variables()[0];
    auto& s = ctx->saved_data;
    Tensor ga, gb;
    if (ctx->needs_input_grad(1))
      ga = sum_to(map_nary<float, uint8_t, float>(
                      "where_backward", [](uint8_t c, float gv) { return c ? gv : 0.0f; }, {cond, g[0]}),
                  std::get<Shape>(s["a"]));
    if (ctx->needs_input_grad(2))
      gb = sum_to(map_nary<float, uint8_t, float>(
                      "where_backward", [](uint8_t c, float gv) { return c ? 0.0f : gv; }, {cond, g[0]}),
                  std::get<Shape>(s["b"]));
    return {Tensor(), ga, gb};
  }
};

// y = mask ? value : x  (broadcast);  dx = g where !mask
struct MaskedFillFn : Function<MaskedFillFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& x, const Tensor& mask, double value) {
    check_dtype(x, kFloat32, "masked_fill", "input");
    check_dtype(mask, kUInt8, "masked_fill", "mask");
    ctx->save_for_backward({mask});
    ctx->saved_data["x"] = x.sizes();
    const float v = static_cast<float>(value);
    return map_nary<float, float, uint8_t>("masked_fill", [v](float xv, uint8_t m) { return m ? v : xv; },
                                           {x, mask});
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    Tensor mask = ctx->get_saved_variables()[0];
    Tensor gx = map_nary<float, float, uint8_t>(
        "masked_fill_backward", [](float gv, uint8_t m) { return m ? 0.0f : gv; }, {g[0], mask});
    return {sum_to(gx, std::get<Shape>(ctx->saved_data["x"])), Tensor()};
  }
};

// y = max(a, b) or min(a, b) (broadcast, NaN propagates). The gradient goes to the larger
// (smaller) input and is split in half on ties, as PyTorch's maximum / minimum backward.
struct MaxMinFn : Function<MaxMinFn> {
  static Tensor forward(AutogradContext* ctx, const Tensor& a, const Tensor& b, bool is_max) {
    ctx->save_for_backward({a, b});
    ctx->saved_data["max"] = is_max;
    if (is_max)
      return detail::map_binary(a, b, "maximum",
                                [](float x, float y) { return x != x ? x : (y != y ? y : (x > y ? x : y)); });
    return detail::map_binary(a, b, "minimum",
                              [](float x, float y) { return x != x ? x : (y != y ? y : (x < y ? x : y)); });
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list g) {
    auto v = ctx->get_saved_variables();
    const bool is_max = std::get<bool>(ctx->saved_data["max"]);
    // share(g, self, other): g / 2 on ties, 0 where `other` wins, else g.
    auto share = [is_max](float gv, float self, float other) {
      if (self == other) return gv / 2.0f;
      const bool loses = is_max ? self < other : self > other;
      return loses ? 0.0f : gv;
    };
    Tensor ga, gb;
    if (ctx->needs_input_grad(0))
      ga = sum_to(map_nary<float, float, float, float>(is_max ? "maximum_backward" : "minimum_backward",
                                                       share, {g[0], v[0], v[1]}),
                  v[0].sizes());
    if (ctx->needs_input_grad(1))
      gb = sum_to(map_nary<float, float, float, float>(is_max ? "maximum_backward" : "minimum_backward",
                                                       share, {g[0], v[1], v[0]}),
                  v[1].sizes());
    return {ga, gb};
  }
};

}  // namespace

Tensor eq(const Tensor& a, const Tensor& b) { return compare<Cmp::eq>(a, b, "eq"); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare<Cmp::ne>(a, b, "ne"); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare<Cmp::lt>(a, b, "lt"); }
Tensor le(const Tensor& a, const Tensor& b) { return compare<Cmp::le>(a, b, "le"); }
Tensor gt(const Tensor& a, const Tensor& b) { return compare<Cmp::gt>(a, b, "gt"); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare<Cmp::ge>(a, b, "ge"); }
Tensor eq(const Tensor& a, double s) { return compare<Cmp::eq>(a, s, "eq"); }
Tensor ne(const Tensor& a, double s) { return compare<Cmp::ne>(a, s, "ne"); }
Tensor lt(const Tensor& a, double s) { return compare<Cmp::lt>(a, s, "lt"); }
Tensor le(const Tensor& a, double s) { return compare<Cmp::le>(a, s, "le"); }
Tensor gt(const Tensor& a, double s) { return compare<Cmp::gt>(a, s, "gt"); }
Tensor ge(const Tensor& a, double s) { return compare<Cmp::ge>(a, s, "ge"); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) { return WhereFn::apply(cond, a, b); }
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  return MaskedFillFn::apply(x, mask, value);
}
Tensor maximum(const Tensor& a, const Tensor& b) { return MaxMinFn::apply(a, b, true); }
Tensor minimum(const Tensor& a, const Tensor& b) { return MaxMinFn::apply(a, b, false); }

}  // namespace quench
