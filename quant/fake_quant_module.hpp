// FakeQuantize module (torch.ao.quantization.FakeQuantize): an observer plus the scale / zero point it
// feeds, applied as fake quantization in forward.
//
//   x float32 [...] -> x_hat float32 [...] (same shape; per channel along spec.axis)
//
// State (all in the state dict, PyTorch's names):
//   fake_quant_enabled i32 [1], observer_enabled i32 [1]   the two switches (1 = on)
//   scale f32 [1], [C] or [C, G] per group (a parameter when learnable, else a buffer), zero_point
//   i32 of the same shape
//   activation_post_process.{min_val, max_val[, histogram]}  the observer's statistics
//
// forward: when the observer is enabled AND the module is in training mode, x is observed and
// scale / zero_point are recomputed from the observer; then, when fake quantization is enabled, the
// result is fake_quantize(x) (STE), or fake_quantize_learnable (LSQ) when learnable. Eval mode never
// moves the statistics (evaluating a QAT model on test data leaves its scales alone); calibrate()
// (quant/prepare.hpp) switches FakeQuantize modules alone to training mode for PTQ.
#pragma once
#include <memory>

#include "nn/module.hpp"
#include "quant/observer.hpp"
#include "quant/qconfig.hpp"

namespace quench::quant {

// An observer as a module: its statistics registered as buffers (type name = the observer's name).
class ObserverModule : public nn::Module {
 public:
  // channels: the channel count of per-channel specs (ignored per tensor); elements: per channel
  // (grouped specs only).
  ObserverModule(ObserverKind kind, const QuantSpec& spec, int64_t channels, int64_t elements = 0);
  Observer& observer() { return *obs_; }
  const Observer& observer() const { return *obs_; }
  ObserverKind kind() const { return kind_; }

 protected:
  Tensor forward(const Tensor& x) override;  // observes x, returns it unchanged

 private:
  ObserverKind kind_;
  std::unique_ptr<Observer> obs_;
};

class FakeQuantize : public nn::Module {
 public:
  // channels: the size of spec.axis for per-channel specs (e.g. out_features), ignored per tensor;
  // elements: per channel (e.g. in_features), needed by grouped specs only.
  FakeQuantize(const QuantSpec& spec, ObserverKind kind, int64_t channels = 0, bool learnable = false,
               int64_t elements = 0);

  void enable_fake_quant(bool on = true);
  void disable_fake_quant() { enable_fake_quant(false); }
  void enable_observer(bool on = true);
  void disable_observer() { enable_observer(false); }
  bool fake_quant_enabled() const;
  bool observer_enabled() const;
  // Stops the statistics: scale / zero_point keep their current values (torch's freeze_observer).
  void freeze() { disable_observer(); }

  // True once the observer saw data (or its statistics were loaded): scale / zero_point are meaningful.
  bool calibrated() const { return !obs_ || obs_->observer().initialized(); }
  // Recomputes scale / zero_point from the observer's statistics (no-op before any data).
  void update_qparams();

  // forward's two halves, for modules that fuse the fake quantization into their own op (QATLinear):
  // observe (when enabled and training) and refresh scale / zero_point; the fake quantization alone.
  void observe_step(const Tensor& x);
  Tensor fake_quant(const Tensor& x);

  const QuantSpec& spec() const { return spec_; }
  bool learnable() const { return learnable_; }
  Tensor scale, zero_point;  // handles to the registered state
  std::string extra_repr() const override;
  // Per tensor with statistics that do not move (eval mode, or the observer off).
  bool row_independent() const override;

 protected:
  Tensor forward(const Tensor& x) override;

 private:
  QuantSpec spec_;
  bool learnable_;
  Tensor fq_enabled_, obs_enabled_;
  std::shared_ptr<ObserverModule> obs_;
};

}  // namespace quench::quant
