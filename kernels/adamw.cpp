// adamw_step dispatch and its reference twin.
#include "kernels/adamw.hpp"

#include "kernels/adamw_scalar.hpp"
#include "kernels/isa.hpp"

namespace quench::kernels {

void adamw_step_avx2(int64_t n, float* w, const float* g, float* m, float* v, const AdamWScalars& s);

void adamw_step(int64_t n, float* w, const float* g, float* m, float* v, const AdamWScalars& s) {
  if (active_isa() >= Isa::avx2)
    adamw_step_avx2(n, w, g, m, v, s);
  else
    adamw_step_ref(n, w, g, m, v, s);
}

void adamw_step_ref(int64_t n, float* w, const float* g, float* m, float* v, const AdamWScalars& s) {
  for (int64_t i = 0; i < n; ++i) adamw_detail::element(w[i], g[i], m[i], v[i], s);
}

}  // namespace quench::kernels
