#include "quant/qat_rows.hpp"

#include <algorithm>

#include "kernels/fake_quant_rows.hpp"
#include "kernels/parallel.hpp"

namespace quench::quant {

void quantize_rows(const float* src, int64_t R, int64_t K, const float* scale, const int32_t* zp, int64_t nscale,
                   const QuantSpec& spec, float* qi, float* deq, uint8_t* mask, uint8_t* code) {
  const int32_t qmin = static_cast<int32_t>(spec.quant_min), qmax = static_cast<int32_t>(spec.quant_max);
  kernels::parallel_for(R, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, K)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t c = nscale == 1 ? 0 : r;
      auto at = [&](auto* p) { return p ? p + r * K : nullptr; };
      kernels::fake_quant_row(src + r * K, K, scale[c], zp[c], qmin, qmax, at(qi), at(deq), at(mask), at(code));
    }
  });
}

void apply_mask(Tensor& g, const Tensor& mask) {
  float* pg = g.data_ptr<float>();
  const uint8_t* pm = mask.data_ptr<uint8_t>();
  kernels::parallel_for(g.numel(), 32768, [&](int64_t b, int64_t e) { kernels::mask_row(pg + b, pm + b, e - b); });
}

}  // namespace quench::quant
