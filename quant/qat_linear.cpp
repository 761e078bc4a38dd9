#include "quant/qat_linear.hpp"

#include "engine/ops.hpp"
#include "quant/qat_linear_op.hpp"

namespace quench::quant {

QATLinear::QATLinear(const nn::Linear& fp32, const QConfig& qc)
    : Module("QATLinear"), in_features(fp32.in_features), out_features(fp32.out_features), qconfig_(qc) {
  QUENCH_CHECK(!qc.activation.per_channel, "QATLinear: activations must be quantized per tensor, got ",
               qc.activation.str());
  QUENCH_CHECK(!qc.weight.per_channel || qc.weight.axis == 0,
               "QATLinear: per-channel weights need axis 0 (output channels), got ", qc.weight.str());
  weight = register_parameter("weight", fp32.weight, fp32.weight.requires_grad());
  if (fp32.bias.defined()) bias = register_parameter("bias", fp32.bias, fp32.bias.requires_grad());
  in_fq_ = register_module("input_fake_quant", std::make_shared<FakeQuantize>(qc.activation, qc.activation_observer,
                                                                              0, qc.learnable_scale));
  w_fq_ = register_module("weight_fake_quant", std::make_shared<FakeQuantize>(qc.weight, qc.weight_observer,
                                                                              out_features, qc.learnable_scale,
                                                                              in_features));
  train(fp32.is_training());
}

std::string QATLinear::extra_repr() const {
  return "in_features=" + std::to_string(in_features) + ", out_features=" + std::to_string(out_features) +
         ", bias=" + (bias.defined() ? "True" : "False");
}

Tensor QATLinear::forward(const Tensor& x) {
  in_fq_->observe_step(x);
  w_fq_->observe_step(weight);
  // Per-token activations and per-group weights take the composed path (qat_linear's int8 GEMM has
  // one activation scale and one weight scale per channel).
  if (!qconfig_.learnable_scale && !qconfig_.activation.per_token && qconfig_.weight.group_size == 0 &&
      in_fq_->fake_quant_enabled() && w_fq_->fake_quant_enabled())
    return qat_linear(x, weight, bias, in_fq_->scale, in_fq_->zero_point, in_fq_->spec(), w_fq_->scale,
                      w_fq_->zero_point, w_fq_->spec());
  return linear(in_fq_->fake_quant(x), w_fq_->fake_quant(weight), bias);
}

}  // namespace quench::quant
