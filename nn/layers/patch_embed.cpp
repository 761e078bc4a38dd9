#include "nn/layers/patch_embed.hpp"

#include <cmath>

#include "engine/ops.hpp"
#include "nn/init.hpp"

namespace quench::nn {

PatchConv2d::PatchConv2d(int64_t in, int64_t out, int64_t p, Generator& gen)
    : Module("Conv2d"), in_channels(in), out_channels(out), patch(p) {
  QUENCH_CHECK(in > 0 && out > 0 && p > 0, "Conv2d: channels and patch must be positive, got in=", in,
               " out=", out, " patch=", p);
  weight = register_parameter("weight", empty({out, in, p, p}));
  bias = register_parameter("bias", empty({out}));
  init::kaiming_uniform_(weight, std::sqrt(5.0), gen);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in * p * p));
  init::uniform_(bias, -bound, bound, gen);
}

std::string PatchConv2d::extra_repr() const {
  const std::string k = std::to_string(patch);
  return std::to_string(in_channels) + ", " + std::to_string(out_channels) + ", kernel_size=(" + k + ", " +
         k + "), stride=(" + k + ", " + k + ")";
}

Tensor PatchConv2d::forward_tokens(const Tensor& x) {
  QUENCH_CHECK(x.dim() == 4 && x.size(1) == in_channels, "Conv2d: expected input [B, ", in_channels,
               ", H, W], got ", shape_str(x.sizes()));
  const int64_t B = x.size(0), C = in_channels, P = patch;
  const int64_t Ho = x.size(2) / P, Wo = x.size(3) / P;
  QUENCH_CHECK(Ho > 0 && Wo > 0, "Conv2d: input ", shape_str(x.sizes()), " is smaller than the patch ", P);
  Tensor xi = x;
  if (Ho * P != x.size(2)) xi = xi.narrow(2, 0, Ho * P);
  if (Wo * P != x.size(3)) xi = xi.narrow(3, 0, Wo * P);
  // [B, C, Ho, P, Wo, P] -> [B, Ho, Wo, C, P, P] -> rows of C*P*P, the order of weight's last dims.
  Tensor cols = xi.reshape({B, C, Ho, P, Wo, P}).permute({0, 2, 4, 1, 3, 5}).reshape({B, Ho * Wo, C * P * P});
  return linear(cols, weight.view({out_channels, C * P * P}), bias);  // [B, Ho*Wo, D]
}

Tensor PatchConv2d::forward(const Tensor& x) {
  const int64_t B = x.dim() == 4 ? x.size(0) : 0;
  Tensor t = forward_tokens(x);
  const int64_t Ho = x.size(2) / patch, Wo = x.size(3) / patch;
  return t.view({B, Ho, Wo, out_channels}).permute({0, 3, 1, 2});
}

PatchEmbed::PatchEmbed(int64_t p, int64_t chans, int64_t dim) : PatchEmbed(p, chans, dim, default_generator()) {}

PatchEmbed::PatchEmbed(int64_t p, int64_t chans, int64_t dim, Generator& gen) : Module("PatchEmbed") {
  register_module("proj", std::make_shared<PatchConv2d>(chans, dim, p, gen));
}

Tensor PatchEmbed::forward(const Tensor& x) {
  // [B, D, Ho, Wo] viewed back to [B, N, D]: both steps are views of the GEMM's output, no copy.
  return (*child("proj"))(x).flatten(2).transpose(1, 2);
}

}  // namespace quench::nn
