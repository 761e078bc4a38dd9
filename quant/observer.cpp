#include "quant/observer.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/autograd.hpp"
#include "engine/ops/creation.hpp"
#include "kernels/fake_quant_rows.hpp"
#include "kernels/parallel.hpp"

namespace quench::quant {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kEps = std::numeric_limits<float>::epsilon();

// x as [C, rest] rows (C = 1 per tensor), contiguous float32.
Tensor as_channel_rows(const Tensor& x, const QuantSpec& spec, const char* op) {
  check_dtype(x, kFloat32, op, "input");
  NoGradGuard ng;
  Tensor d = x.detach();
  if (!spec.per_channel) return d.reshape({1, -1}).contiguous();
  QUENCH_CHECK(x.dim() >= 1, op, ": per-channel observation needs at least 1 dim, got shape ",
               shape_str(x.sizes()));
  int64_t axis = wrap_dim(spec.axis, x.dim(), op);
  return d.transpose(0, axis).contiguous().reshape({x.size(axis), -1});
}

}  // namespace

// The state's shape: [] per tensor, [C] per channel, [C, groups] per group.
Shape Observer::state_shape(int64_t channels, int64_t elements) const {
  if (!spec_.per_channel) return Shape{};
  if (spec_.group_size > 0) return Shape{channels, spec_.groups_per_channel(elements)};
  return Shape{channels};
}

void Observer::ensure_state(const Tensor& x) {
  Shape shape;
  if (spec_.per_channel) {
    const int64_t c = x.size(wrap_dim(spec_.axis, x.dim(), "observer"));
    shape = state_shape(c, c ? x.numel() / c : 0);
  }
  if (min_val_.defined()) {
    QUENCH_CHECK(min_val_.sizes() == shape, name(), ": observed a tensor of shape ", shape_str(x.sizes()),
                 " whose channel (or group) count ", shape_str(shape), " differs from the ",
                 shape_str(min_val_.sizes()), " seen before");
    return;
  }
  min_val_ = full(shape, kInf);
  max_val_ = full(shape, -kInf);
}

void Observer::init_state(int64_t channels, int64_t elements) {
  if (min_val_.defined()) return;
  QUENCH_CHECK(!spec_.per_channel || channels > 0, name(), ": init_state needs a positive channel count, got ",
               channels);
  QUENCH_CHECK(spec_.group_size == 0 || elements > 0, name(), ": a grouped spec (", spec_.str(),
               ") needs the elements per channel to size its state, got ", elements);
  Shape shape = state_shape(channels, elements);
  min_val_ = full(shape, kInf);
  max_val_ = full(shape, -kInf);
}

std::pair<std::vector<float>, std::vector<float>> Observer::batch_min_max(const Tensor& x) const {
  // Each channel row (or each group of one) is cut into pieces reduced in parallel, then folded in
  // order with the same strict comparisons: exactly the serial loop's result (first extreme kept),
  // for any thread count.
  constexpr int64_t kPiece = 16384;
  Tensor rows = as_channel_rows(x, spec_, "observer");
  const int64_t c = rows.size(0), n = rows.size(1);
  const int64_t seg = spec_.group_size > 0 ? spec_.group_size : n, nseg = spec_.groups_per_channel(n);
  const int64_t pieces = (seg + kPiece - 1) / kPiece, per_row = nseg * pieces;
  std::vector<float> plo(c * per_row, kInf), phi(c * per_row, -kInf);
  const float* p = rows.data_ptr<float>();
  kernels::parallel_for(c * per_row, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t i = t / per_row, j = (t % per_row) / pieces, j0 = j * seg + (t % pieces) * kPiece;
      const int64_t len = std::min(kPiece, std::min(n, (j + 1) * seg) - j0);
      if (len > 0) kernels::min_max_row(p + i * n + j0, len, &plo[t], &phi[t]);
    }
  });
  std::vector<float> lo(c * nseg, kInf), hi(c * nseg, -kInf);
  for (int64_t t = 0; t < c * per_row; ++t) {
    if (plo[t] < lo[t / pieces]) lo[t / pieces] = plo[t];
    if (phi[t] > hi[t / pieces]) hi[t / pieces] = phi[t];
  }
  return {lo, hi};
}

bool Observer::initialized() const {
  if (!min_val_.defined() || min_val_.numel() == 0) return false;
  std::vector<float> lo = min_val_.to_vector<float>(), hi = max_val_.to_vector<float>();
  for (size_t i = 0; i < lo.size(); ++i)
    if (!std::isfinite(lo[i]) || !std::isfinite(hi[i])) return false;
  return true;
}

std::vector<std::pair<std::string, Tensor>> Observer::state() const {
  return {{"min_val", min_val_}, {"max_val", max_val_}};
}

QParams Observer::calculate_qparams() const {
  QUENCH_CHECK(initialized(), name(), ": calculate_qparams before any data was observed; run at least "
                                      "one batch through the model (calibration) first");
  return qparams_from_range(min_val_.to_vector<float>(), max_val_.to_vector<float>(), spec_);
}

void qparams_of(float min_v, float max_v, const QuantSpec& spec, float* scale, int32_t* zero_point) {
  const float qmin = static_cast<float>(spec.quant_min), qmax = static_cast<float>(spec.quant_max);
  const float lo = std::min(min_v, 0.f), hi = std::max(max_v, 0.f);
  if (spec.symmetric) {
    const float amax = std::max(-lo, hi);
    *scale = std::max(amax / ((qmax - qmin) / 2.f), kEps);
    *zero_point = spec.is_signed ? 0 : static_cast<int32_t>((spec.quant_min + spec.quant_max + 1) / 2);
  } else {
    *scale = std::max((hi - lo) / (qmax - qmin), kEps);
    float z = qmin - std::nearbyint(lo / *scale);
    *zero_point = static_cast<int32_t>(std::clamp(z, qmin, qmax));
  }
}

QParams qparams_from_range(const std::vector<float>& min_v, const std::vector<float>& max_v,
                           const QuantSpec& spec) {
  const size_t c = min_v.size();
  Tensor scale = Tensor::empty(spec.per_channel ? Shape{static_cast<int64_t>(c)} : Shape{}, kFloat32);
  Tensor zp = Tensor::empty(scale.sizes(), kInt32);
  float* ps = scale.data_ptr<float>();
  int32_t* pz = zp.data_ptr<int32_t>();
  for (size_t i = 0; i < c; ++i) qparams_of(min_v[i], max_v[i], spec, ps + i, pz + i);
  return {scale, zp};
}

void row_qparams(const float* x, int64_t n, const QuantSpec& spec, float* scale, int32_t* zero_point) {
  float lo = kInf, hi = -kInf;
  if (n > 0) kernels::min_max_row(x, n, &lo, &hi);
  qparams_of(lo, hi, spec, scale, zero_point);
}

void MinMaxObserver::observe(const Tensor& x) {
  ensure_state(x);
  auto [lo, hi] = batch_min_max(x);
  float* pl = min_val_.data_ptr<float>();
  float* ph = max_val_.data_ptr<float>();
  for (size_t i = 0; i < lo.size(); ++i) {
    pl[i] = std::min(pl[i], lo[i]);
    ph[i] = std::max(ph[i], hi[i]);
  }
}

void MovingAverageMinMaxObserver::observe(const Tensor& x) {
  ensure_state(x);
  const bool first = !initialized();
  auto [lo, hi] = batch_min_max(x);
  float* pl = min_val_.data_ptr<float>();
  float* ph = max_val_.data_ptr<float>();
  const float c = static_cast<float>(c_);
  for (size_t i = 0; i < lo.size(); ++i) {
    if (first) {
      pl[i] = lo[i];
      ph[i] = hi[i];
    } else {
      pl[i] = pl[i] + c * (lo[i] - pl[i]);
      ph[i] = ph[i] + c * (hi[i] - ph[i]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Histogram

HistogramObserver::HistogramObserver(QuantSpec spec, int64_t bins) : Observer(std::move(spec)), bins_(bins) {
  QUENCH_CHECK(!spec_.per_channel, "HistogramObserver: only per-tensor specs are supported, got ",
               spec_.str());
  QUENCH_CHECK(bins >= 16, "HistogramObserver: needs at least 16 bins, got ", bins);
  histogram_ = zeros({bins});
}

std::vector<std::pair<std::string, Tensor>> HistogramObserver::state() const {
  auto s = Observer::state();
  s.emplace_back("histogram", histogram_);
  return s;
}

void HistogramObserver::observe(const Tensor& x) {
  ensure_state(x);
  auto [blo, bhi] = batch_min_max(x);
  if (!std::isfinite(blo[0]) || !std::isfinite(bhi[0])) return;  // empty or non-finite batch
  float* h = histogram_.data_ptr<float>();
  float& mn = *min_val_.data_ptr<float>();
  float& mx = *max_val_.data_ptr<float>();
  const bool first = !initialized();
  float new_lo = first ? blo[0] : std::min(mn, blo[0]);
  float new_hi = first ? bhi[0] : std::max(mx, bhi[0]);
  if (new_hi <= new_lo) new_hi = new_lo + kEps * std::max(1.f, std::abs(new_lo));
  if (!first && (new_lo < mn || new_hi > mx)) {
    // Re-bin the old histogram onto the wider range, splitting each old bin by overlap.
    std::vector<double> old(h, h + bins_), fresh(bins_, 0.0);
    const double ow = (static_cast<double>(mx) - mn) / bins_, nw = (static_cast<double>(new_hi) - new_lo) / bins_;
    for (int64_t i = 0; i < bins_; ++i) {
      if (old[i] == 0.0) continue;
      double a = mn + i * ow, b = a + ow;
      if (ow <= 0) {
        int64_t j = std::clamp<int64_t>(static_cast<int64_t>((a - new_lo) / nw), 0, bins_ - 1);
        fresh[j] += old[i];
        continue;
      }
      int64_t ja = std::clamp<int64_t>(static_cast<int64_t>(std::floor((a - new_lo) / nw)), 0, bins_ - 1);
      int64_t jb = std::clamp<int64_t>(static_cast<int64_t>(std::floor((b - new_lo) / nw)), 0, bins_ - 1);
      for (int64_t j = ja; j <= jb; ++j) {
        double lo = std::max(a, new_lo + j * nw), hi = std::min(b, new_lo + (j + 1) * nw);
        if (hi > lo) fresh[j] += old[i] * (hi - lo) / ow;
      }
    }
    for (int64_t i = 0; i < bins_; ++i) h[i] = static_cast<float>(fresh[i]);
  }
  mn = new_lo;
  mx = new_hi;
  NoGradGuard ng;
  Tensor c = x.detach().contiguous();
  const float* p = c.data_ptr<float>();
  const double w = (static_cast<double>(mx) - mn) / bins_;
  for (int64_t i = 0, n = c.numel(); i < n; ++i) {
    if (!std::isfinite(p[i])) continue;
    int64_t j = static_cast<int64_t>((p[i] - mn) / w);
    h[std::clamp<int64_t>(j, 0, bins_ - 1)] += 1.f;
  }
}

namespace {

// Expected squared error, summed over the histogram, of quantizing to `levels` evenly spaced points on
// [lo, hi] with clipping; values are uniform within each source bin.
double quantization_error(const std::vector<double>& hist, double mn, double bw, double lo, double hi,
                          int64_t levels) {
  const double s = (hi - lo) / static_cast<double>(levels - 1);
  double err = 0.0;
  for (size_t i = 0; i < hist.size(); ++i) {
    if (hist[i] == 0.0) continue;
    const double a = mn + i * bw, b = a + bw, density = hist[i] / bw;
    // Pieces of [a, b] where the nearest grid point is constant.
    int64_t ka = std::clamp<int64_t>(static_cast<int64_t>(std::floor((a - lo) / s + 0.5)), 0, levels - 1);
    int64_t kb = std::clamp<int64_t>(static_cast<int64_t>(std::floor((b - lo) / s + 0.5)), 0, levels - 1);
    for (int64_t k = ka; k <= kb; ++k) {
      const double g = lo + k * s;
      double pa = k == 0 ? a : std::max(a, g - 0.5 * s);
      double pb = k == levels - 1 ? b : std::min(b, g + 0.5 * s);
      if (pb <= pa) continue;
      err += density * ((pb - g) * (pb - g) * (pb - g) - (pa - g) * (pa - g) * (pa - g)) / 3.0;
    }
  }
  return err;
}

}  // namespace

std::pair<float, float> HistogramObserver::optimal_range() const {
  QUENCH_CHECK(initialized(), "HistogramObserver: no data observed yet; calibrate first");
  const float mn = *min_val_.data_ptr<float>(), mx = *max_val_.data_ptr<float>();
  std::vector<double> hist = histogram_.to_vector<double>();
  const double bw = (static_cast<double>(mx) - mn) / bins_;
  double total = 0.0;
  for (double v : hist) total += v;
  if (total == 0.0 || bw <= 0.0) return {mn, mx};
  std::vector<double> csum(bins_);
  double acc = 0.0;
  for (int64_t i = 0; i < bins_; ++i) csum[i] = (acc += hist[i]);
  const int64_t levels = spec_.quant_max - spec_.quant_min + 1;

  // Shrink the range greedily from whichever side frees more bins per step of probability mass,
  // while the error keeps falling (the search of PyTorch's HistogramObserver).
  int64_t start = 0, end = bins_ - 1;
  double best = quantization_error(hist, mn, bw, mn, mx, levels);
  const double step = 1e-4;
  double alpha = 0.0, beta = 1.0;
  while (alpha < beta) {
    const double na = alpha + step, nb = beta - step;
    int64_t l = start, r = end;
    while (l < end && csum[l] < na * total) ++l;
    while (r > start && csum[r] > nb * total) --r;
    int64_t ns = start, ne = end;
    if (l - start > end - r) {
      ns = l;
      alpha = na;
    } else {
      ne = r;
      beta = nb;
    }
    if (ns == start && ne == end) continue;
    if (ne <= ns) break;
    double e = quantization_error(hist, mn, bw, mn + ns * bw, mn + (ne + 1) * bw, levels);
    if (e > best) break;
    best = e;
    start = ns;
    end = ne;
  }
  return {static_cast<float>(mn + start * bw), static_cast<float>(mn + (end + 1) * bw)};
}

QParams HistogramObserver::calculate_qparams() const {
  auto [lo, hi] = optimal_range();
  return qparams_from_range({lo}, {hi}, spec_);
}

std::unique_ptr<Observer> make_observer(ObserverKind kind, const QuantSpec& spec) {
  switch (kind) {
    case ObserverKind::min_max: return std::make_unique<MinMaxObserver>(spec);
    case ObserverKind::moving_average_min_max: return std::make_unique<MovingAverageMinMaxObserver>(spec);
    case ObserverKind::histogram: return std::make_unique<HistogramObserver>(spec);
  }
  throw Error("make_observer: unknown observer kind");
}

}  // namespace quench::quant
