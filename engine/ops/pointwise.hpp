// Element-wise ops, broadcasting like PyTorch. All are differentiable in their float inputs.
#pragma once
#include <string>

#include "engine/tensor.hpp"

namespace quench {

Tensor add(const Tensor& a, const Tensor& b, double alpha = 1.0);  // a + alpha * b
Tensor sub(const Tensor& a, const Tensor& b, double alpha = 1.0);  // a - alpha * b
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor div(const Tensor& a, double s);
Tensor rsub(const Tensor& a, double s);  // s - a
Tensor rdiv(const Tensor& a, double s);  // s / a
Tensor neg(const Tensor& a);
Tensor pow(const Tensor& a, double exponent);
Tensor pow(const Tensor& a, const Tensor& exponent);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);
Tensor abs(const Tensor& a);  // gradient sign(x), 0 at 0 (as PyTorch)
// min or max may be NaN to mean "no bound". Gradient passes where min <= x <= max.
Tensor clamp(const Tensor& a, double min, double max);
Tensor tanh(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor relu(const Tensor& a);
// approximate = "none" (exact, erf) or "tanh", as torch.nn.functional.gelu; anything else throws.
Tensor gelu(const Tensor& a, const std::string& approximate = "none");
// NaN propagates; the gradient goes to the larger (smaller) input, halved on ties, as PyTorch.
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);

// Comparisons give u8 masks (0 or 1) and no gradient. Any dtypes; mixed dtypes compare after
// promotion (to float32 when either is float, else int32). A float tensor compares with a scalar
// in float, as PyTorch.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, double s);
Tensor ne(const Tensor& a, double s);
Tensor lt(const Tensor& a, double s);
Tensor le(const Tensor& a, double s);
Tensor gt(const Tensor& a, double s);
Tensor ge(const Tensor& a, double s);

// cond ? a : b, with cond a u8 mask; all three broadcast. Gradient flows to a and b.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// x with `value` where the u8 mask is nonzero; x and mask broadcast (as PyTorch's out-of-place
// masked_fill). Gradient flows to x where the mask is 0.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);

}  // namespace quench
