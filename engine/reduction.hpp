// Reduction core shared by sum, mean, var, max, min, argmax (internal to engine/).
//
// Each output element is reduced by one thread in a fixed order, so results do not depend on the
// thread count. Reducer: struct with `using Acc`, Acc init(), void step(Acc&, float v, int64_t idx)
// where idx counts positions along the reduced dims in row-major order, and float/int32 done(Acc, n).
#pragma once
#include <vector>

#include "engine/strided.hpp"
#include "engine/tensor.hpp"

namespace quench::detail {

struct ReducePlan {
  Shape out_shape;       // with keepdim applied
  Shape kept_sizes;      // kept dims of x, in order
  Shape kept_strides;    // their strides in x
  Shape red_sizes;       // reduced dims of x, in order
  Shape red_strides;
  int64_t red_numel = 1;
};

// dims empty = all dims. Negative dims wrap. Repeated dims are an error.
ReducePlan plan_reduction(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim,
                          const char* op);

template <class Out, class Reducer>
Tensor reduce(const Tensor& x, const ReducePlan& p, Reducer r, DType out_dtype) {
  Tensor out = Tensor::empty(p.out_shape, out_dtype);
  Out* po = static_cast<Out*>(out.raw_data());
  const float* px = x.data_ptr<float>();
  int64_t out_n = shape_numel(p.kept_sizes);
  Shape kept_contig = contiguous_strides(p.kept_sizes);
  StridedLayout<1> red(p.red_sizes, {&p.red_strides});
  const int64_t red_rows = red.rows(), red_inner = red.inner();
  const int64_t red_inner_stride = red.inner_strides()[0];
  kernels::parallel_for(out_n, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, p.red_numel)),
                        [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      int64_t base = 0, rem = o;
      for (size_t d = 0; d < p.kept_sizes.size(); ++d) {
        int64_t i = rem / kept_contig[d];
        rem -= i * kept_contig[d];
        base += i * p.kept_strides[d];
      }
      auto acc = r.init();
      int64_t idx = 0;
      for (int64_t row = 0; row < red_rows; ++row) {
        const float* q = px + base + red.row_offsets(row)[0];
        for (int64_t i = 0; i < red_inner; ++i, ++idx) r.step(acc, q[i * red_inner_stride], idx);
      }
      po[o] = r.done(acc, p.red_numel);
    }
  });
  return out;
}

}  // namespace quench::detail
