// QATLinear: nn::Linear with fake-quantized input and weight (torch.ao.nn.qat.Linear plus the input
// quantization the int8 model does).
//   x [..., in] -> y [..., out];  y = fq_x(x) @ fq_w(W)^T + b
// Parameters keep Linear's names (weight [out, in], bias [out]) so FP32 checkpoints load; children
// input_fake_quant (per tensor, uint8 by default) and weight_fake_quant (per output channel, int8).
// With both fake quantizations on and fixed scales, forward is quant::qat_linear: the int8 model's
// exact integer grid, bit-identical to the converted Int8Linear (and, for weights of 4 bits or less
// per channel, to the converted Int4Linear). Otherwise (LSQ scales, per-token activations, per-group
// weights, or a fake quantization switched off, e.g. during PTQ calibration) it composes FakeQuantize
// and linear.
#pragma once
#include <memory>

#include "nn/layers/linear.hpp"
#include "quant/fake_quant_module.hpp"
#include "quant/qconfig.hpp"

namespace quench::quant {

class QATLinear : public nn::Module {
 public:
  // Shares the weight / bias tensors of `fp32` (optimizers holding them keep working).
  QATLinear(const nn::Linear& fp32, const QConfig& qconfig);
  std::string extra_repr() const override;
  // The weight's fake quantization sees the weight alone; the input's decides.
  bool row_independent() const override { return in_fq_->row_independent(); }

  FakeQuantize& input_fake_quant() { return *in_fq_; }
  FakeQuantize& weight_fake_quant() { return *w_fq_; }
  const QConfig& qconfig() const { return qconfig_; }

  int64_t in_features, out_features;
  Tensor weight, bias;

 protected:
  Tensor forward(const Tensor& x) override;

 private:
  QConfig qconfig_;
  std::shared_ptr<FakeQuantize> in_fq_, w_fq_;
};

}  // namespace quench::quant
