#include "dist/data_parallel.hpp"

#include <algorithm>
#include <cstring>

#include "engine/error.hpp"

namespace quench::dist {

DataParallel::DataParallel(std::vector<Tensor> params, ProcessGroup& pg, DataParallelOptions options)
    : params_(std::move(params)), pg_(pg) {
  QUENCH_CHECK(options.bucket_cap_mb > 0, "DataParallel: bucket_cap_mb must be positive, got ",
               options.bucket_cap_mb);
  const auto cap = static_cast<int64_t>(options.bucket_cap_mb * 1024 * 1024 / sizeof(float));
  int64_t filled = 0;
  for (int64_t i = static_cast<int64_t>(params_.size()) - 1; i >= 0; --i) {
    const Tensor& p = params_[i];
    QUENCH_CHECK(p.dtype() == kFloat32 && p.is_contiguous(), "DataParallel: parameter ", i,
                 " must be a contiguous float32 tensor, got ", dtype_name(p.dtype()), " ", shape_str(p.sizes()));
    if (buckets_.empty() || (filled > 0 && filled + p.numel() > cap)) {
      buckets_.emplace_back();
      filled = 0;
    }
    buckets_.back().push_back(i);
    filled += p.numel();
  }
}

void DataParallel::broadcast_from_main(const std::vector<Tensor>& tensors) {
  for (const Tensor& t : tensors) {
    QUENCH_CHECK(t.is_contiguous(), "DataParallel::broadcast_from_main: tensor ", shape_str(t.sizes()),
                 " is not contiguous");
    pg_.broadcast(t.raw_data(), static_cast<int64_t>(t.nbytes()), 0);
  }
}

void DataParallel::synchronize_gradients() {
  if (pg_.size() == 1) return;
  const float inv = 1.0f / static_cast<float>(pg_.size());
  for (const auto& bucket : buckets_) {
    int64_t n = 0;
    for (int64_t i : bucket) n += params_[i].numel();
    flat_.resize(n);
    int64_t at = 0;
    for (int64_t i : bucket) {
      const Tensor g = params_[i].grad();
      const int64_t k = params_[i].numel();
      if (g.defined())
        std::memcpy(flat_.data() + at, g.contiguous().data_ptr<float>(), k * sizeof(float));
      else
        std::fill_n(flat_.data() + at, k, 0.0f);
      at += k;
    }
    pg_.all_reduce_sum(flat_.data(), n);
    for (float& v : flat_) v *= inv;
    at = 0;
    for (int64_t i : bucket) {
      const Tensor& p = params_[i];
      Tensor g = p.grad();
      if (!g.defined() || !g.is_contiguous()) {
        g = Tensor::empty(p.sizes(), kFloat32);
        p.set_grad(g);
      }
      std::memcpy(g.data_ptr<float>(), flat_.data() + at, p.numel() * sizeof(float));
      at += p.numel();
    }
  }
}

void all_reduce_sum(ProcessGroup& pg, std::vector<double>& values) {
  pg.all_reduce_sum(values.data(), static_cast<int64_t>(values.size()));
}

}  // namespace quench::dist
