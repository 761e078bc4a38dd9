#include "nn/layers/patch_dropout.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "engine/error.hpp"
#include "engine/ops.hpp"

namespace quench::nn {

int64_t patches_kept(int64_t patches, double p) {
  QUENCH_CHECK(p >= 0.0 && p < 1.0, "PatchDropout: the drop probability must be in [0, 1), got ", p);
  return std::max<int64_t>(1, static_cast<int64_t>(std::floor(static_cast<double>(patches) * (1.0 - p))));
}

Tensor drop_patches(const Tensor& x, int64_t prefix, int64_t keep, Generator& gen) {
  QUENCH_CHECK(x.dim() == 3 && prefix >= 0 && x.size(1) > prefix,
               "drop_patches: expected tokens [B, prefix + L, D] with L >= 1 after the ", prefix,
               " prefix tokens, got ", shape_str(x.sizes()));
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2), L = N - prefix;
  QUENCH_CHECK(keep >= 1 && keep <= L, "drop_patches: can keep 1 to ", L, " of the ", L,
               " patch tokens of ", shape_str(x.sizes()), ", asked for ", keep);
  const int64_t T = prefix + keep;
  std::vector<int32_t> rows(static_cast<size_t>(B * T));
  std::vector<int32_t> perm(static_cast<size_t>(L));
  for (int64_t b = 0; b < B; ++b) {
    // The first `keep` slots of a partial Fisher-Yates shuffle: a uniform subset.
    std::iota(perm.begin(), perm.end(), 0);
    for (int64_t i = 0; i < keep; ++i)
      std::swap(perm[i], perm[i + static_cast<int64_t>(gen.below(static_cast<uint64_t>(L - i)))]);
    std::sort(perm.begin(), perm.begin() + keep);
    int32_t* r = rows.data() + b * T;
    for (int64_t t = 0; t < prefix; ++t) r[t] = static_cast<int32_t>(b * N + t);
    for (int64_t i = 0; i < keep; ++i) r[prefix + i] = static_cast<int32_t>(b * N + prefix + perm[i]);
  }
  return index_select(x.reshape({B * N, D}), 0, tensor(rows, {B * T})).view({B, T, D});
}

}  // namespace quench::nn
