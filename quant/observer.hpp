// Observers: running statistics of a tensor from which quantization parameters are derived.
//
// Semantics follow torch.ao.quantization: the range always includes 0; affine
// s = (max - min) / (qmax - qmin), z = clamp(qmin - round(min / s), qmin, qmax); symmetric
// s = max(|min|, |max|) / ((qmax - qmin) / 2) with z = 0 for signed (the middle of the range for
// unsigned); s >= float32 eps. MovingAverage: m += c * (cur - m) with c = 0.01, the first batch
// initializes. Per-channel variants reduce over every dim but the spec's axis; grouped specs
// (spec.group_size) keep one range per group of each channel: state [C, groups].
//
// Statistics live in tensors (min_val, max_val, ...) updated in place, so a module can register them
// as buffers and they travel in checkpoints.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.hpp"
#include "quant/qparams.hpp"
#include "quant/spec.hpp"

namespace quench::quant {

class Observer {
 public:
  explicit Observer(QuantSpec spec) : spec_(std::move(spec)) { spec_.validate(); }
  virtual ~Observer() = default;
  // Updates the statistics with x (float32; no gradient is recorded).
  virtual void observe(const Tensor& x) = 0;
  virtual QParams calculate_qparams() const;
  // Named state tensors (updated in place; register them as buffers to checkpoint them).
  virtual std::vector<std::pair<std::string, Tensor>> state() const;
  virtual std::string name() const = 0;
  // True once observe() saw data (or state was loaded with finite values).
  bool initialized() const;
  // Creates the (not yet observed: +inf / -inf) state up front for `channels` channels (ignored per
  // tensor) of `elements` each (grouped specs only), so a module can register it as buffers before
  // the first batch. No-op when it exists.
  void init_state(int64_t channels, int64_t elements = 0);
  const QuantSpec& spec() const { return spec_; }
  // The observed range, [] per tensor, [C] per channel or [C, groups] per group.
  const Tensor& min_val() const { return min_val_; }
  const Tensor& max_val() const { return max_val_; }

 protected:
  // Per-tensor: [] ; per-channel: [C] with C = x.size(axis); per group [C, groups]. Filled with
  // +inf / -inf until observed.
  void ensure_state(const Tensor& x);
  Shape state_shape(int64_t channels, int64_t elements) const;
  // Current batch's min and max, shaped like min_val_.
  std::pair<std::vector<float>, std::vector<float>> batch_min_max(const Tensor& x) const;

  QuantSpec spec_;
  Tensor min_val_, max_val_;
};

// Running min / max over everything observed.
class MinMaxObserver : public Observer {
 public:
  explicit MinMaxObserver(QuantSpec spec) : Observer(std::move(spec)) {}
  void observe(const Tensor& x) override;
  std::string name() const override { return spec_.per_channel ? "PerChannelMinMaxObserver" : "MinMaxObserver"; }
};

// Exponential moving average of each batch's min / max (the QAT default for activations).
class MovingAverageMinMaxObserver : public Observer {
 public:
  explicit MovingAverageMinMaxObserver(QuantSpec spec, double averaging_constant = 0.01)
      : Observer(std::move(spec)), c_(averaging_constant) {}
  void observe(const Tensor& x) override;
  std::string name() const override {
    return spec_.per_channel ? "MovingAveragePerChannelMinMaxObserver" : "MovingAverageMinMaxObserver";
  }
  double averaging_constant() const { return c_; }

 private:
  double c_;
};

// Histogram of everything observed (per tensor); calculate_qparams picks the range that minimizes the
// expected L2 quantization error (clipping + rounding), for PTQ calibration of skewed activations.
class HistogramObserver : public Observer {
 public:
  explicit HistogramObserver(QuantSpec spec, int64_t bins = 2048);
  void observe(const Tensor& x) override;
  QParams calculate_qparams() const override;
  std::vector<std::pair<std::string, Tensor>> state() const override;
  std::string name() const override { return "HistogramObserver"; }
  // The [lo, hi] chosen by the L2 search (exposed for tests and reports).
  std::pair<float, float> optimal_range() const;

 private:
  int64_t bins_;
  Tensor histogram_;  // float32 [bins] over [min_val, max_val]
};

// Turns a min / max pair into (scale, zero_point) under `spec` (the shared formula above).
void qparams_of(float min_v, float max_v, const QuantSpec& spec, float* scale, int32_t* zero_point);
// The same over vectors: scale / zero_point [] per tensor, flat [C] (or [C * groups]) per channel.
QParams qparams_from_range(const std::vector<float>& min_v, const std::vector<float>& max_v,
                           const QuantSpec& spec);

// Dynamic per-token qparams: the formula on the min / max of x[0, n) (NaN skipped, as observers do).
void row_qparams(const float* x, int64_t n, const QuantSpec& spec, float* scale, int32_t* zero_point);

enum class ObserverKind { min_max, moving_average_min_max, histogram };
std::unique_ptr<Observer> make_observer(ObserverKind kind, const QuantSpec& spec);

}  // namespace quench::quant
