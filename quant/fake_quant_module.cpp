#include "quant/fake_quant_module.hpp"

#include <cmath>

#include "engine/autograd.hpp"
#include "engine/ops/creation.hpp"
#include "quant/fake_quantize.hpp"

namespace quench::quant {

ObserverModule::ObserverModule(ObserverKind kind, const QuantSpec& spec, int64_t channels, int64_t elements)
    : Module("Observer"), kind_(kind), obs_(make_observer(kind, spec)) {
  obs_->init_state(channels, elements);
  for (auto& [name, t] : obs_->state()) register_buffer(name, t);
}

Tensor ObserverModule::forward(const Tensor& x) {
  obs_->observe(x);
  return x;
}

FakeQuantize::FakeQuantize(const QuantSpec& spec, ObserverKind kind, int64_t channels, bool learnable,
                           int64_t elements)
    : Module("FakeQuantize"), spec_(spec), learnable_(learnable) {
  spec_.validate();
  QUENCH_CHECK(!spec.per_channel || channels > 0, "FakeQuantize: a per-channel spec (", spec.str(),
               ") needs the channel count, got ", channels);
  QUENCH_CHECK(spec.group_size == 0 || elements > 0, "FakeQuantize: a grouped spec (", spec.str(),
               ") needs the elements per channel, got ", elements);
  QUENCH_CHECK(!(spec.per_token && learnable), "FakeQuantize: per-token scales are computed per row at each "
               "forward; they cannot be learned (LSQ). Use a per-tensor activation spec with LSQ");
  const Shape qshape = !spec.per_channel      ? Shape{1}
                       : spec.group_size > 0 ? Shape{channels, spec.groups_per_channel(elements)}
                                             : Shape{channels};
  fq_enabled_ = register_buffer("fake_quant_enabled", full({1}, 1, kInt32));
  obs_enabled_ = register_buffer("observer_enabled", full({1}, 1, kInt32));
  if (learnable)
    scale = register_parameter("scale", ones(qshape));
  else
    scale = register_buffer("scale", ones(qshape));
  zero_point = register_buffer("zero_point", zeros(qshape, kInt32));
  if (!spec.per_token)
    obs_ = register_module("activation_post_process",
                           std::make_shared<ObserverModule>(kind, spec, channels, elements));
}

void FakeQuantize::enable_fake_quant(bool on) { fq_enabled_.fill_(on ? 1 : 0); }
void FakeQuantize::enable_observer(bool on) { obs_enabled_.fill_(on ? 1 : 0); }
bool FakeQuantize::fake_quant_enabled() const { return fq_enabled_.data_ptr<int32_t>()[0] != 0; }
bool FakeQuantize::observer_enabled() const { return obs_enabled_.data_ptr<int32_t>()[0] != 0; }

void FakeQuantize::update_qparams() {
  if (!obs_ || !calibrated()) return;
  NoGradGuard ng;
  QParams qp = obs_->observer().calculate_qparams();
  Tensor(scale).copy_(qp.scale.reshape(scale.sizes()));
  Tensor(zero_point).copy_(qp.zero_point.reshape(zero_point.sizes()));
}

bool FakeQuantize::row_independent() const {
  if (spec_.per_token) return true;  // each row on its own qparams
  return !spec_.per_channel && !(observer_enabled() && is_training());
}

std::string FakeQuantize::extra_repr() const {
  return spec_.str() + ", observer=" + (obs_ ? obs_->observer().name() : "none (dynamic)") +
         (learnable_ ? ", learnable" : "") +
         ", fake_quant=" + (fake_quant_enabled() ? "on" : "off") +
         ", observer=" + (observer_enabled() ? "on" : "off");
}

Tensor FakeQuantize::forward(const Tensor& x) {
  observe_step(x);
  return fake_quant(x);
}

void FakeQuantize::observe_step(const Tensor& x) {
  check_dtype(x, kFloat32, "FakeQuantize", "input");
  if (!obs_ || !observer_enabled() || !is_training()) return;
  NoGradGuard ng;
  obs_->observer().observe(x);
  // Scales are only needed while fake quantizing; PTQ calibration (fake quant off) computes them once
  // at the end, which matters for the histogram observer's range search.
  if (fake_quant_enabled()) update_qparams();
}

Tensor FakeQuantize::fake_quant(const Tensor& x) {
  if (!fake_quant_enabled()) return x;
  if (spec_.per_token) return fake_quantize_per_token(x, spec_);
  if (!learnable_) return fake_quantize(x, scale.detach(), zero_point, spec_);
  // LSQ gradient scaling: 1 / sqrt(elements per scale * qmax); per group, the group size (the
  // last group of a channel may be shorter).
  const int64_t per_channel = x.numel() / std::max<int64_t>(1, x.size(0));
  const int64_t per_scale = spec_.group_size > 0 ? std::min(spec_.group_size, per_channel)
                                                 : x.numel() / std::max<int64_t>(1, scale.numel());
  const double gf = 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(1, per_scale)) *
                                    static_cast<double>(spec_.quant_max));
  return fake_quantize_learnable(x, scale, zero_point, spec_, gf);
}

}  // namespace quench::quant
