// Parameter initializers (torch.nn.init and timm's trunc_normal_), drawing from a Generator.
// They write in place outside autograd; the tensor must be float32 and contiguous.
#pragma once
#include <utility>

#include "engine/generator.hpp"
#include "engine/tensor.hpp"

namespace quench::nn::init {

// (fan_in, fan_out) as torch.nn.init._calculate_fan_in_and_fan_out: for [out, in, k...] weights,
// fan_in = in * prod(k), fan_out = out * prod(k). Needs at least 2 dims.
std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& t);

void constant_(Tensor& t, double value);
void zeros_(Tensor& t);
void ones_(Tensor& t);
void uniform_(Tensor& t, double a, double b, Generator& gen);
void normal_(Tensor& t, double mean, double std, Generator& gen);
// Normal(mean, std) redrawn until inside [a, b] (absolute bounds, timm's default a = -2, b = 2).
void trunc_normal_(Tensor& t, double mean, double std, double a, double b, Generator& gen);
// kaiming_uniform_(mode = fan_in, nonlinearity = leaky_relu): bound = sqrt(6 / ((1 + a^2) fan_in)).
void kaiming_uniform_(Tensor& t, double a, Generator& gen);

}  // namespace quench::nn::init
