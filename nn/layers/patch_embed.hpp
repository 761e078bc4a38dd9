// Patch embedding as in timm / vit_reference.py.
//
// PatchConv2d: torch.nn.Conv2d restricted to non-overlapping patches (kernel = stride, no padding,
// no dilation, groups 1), which is all a ViT needs. Computed as a patch unfold (reshape + permute,
// one copy) and one GEMM; no general convolution.
//   x [B, C, H, W] -> [B, D, H/P, W/P] (floor, trailing rows/cols dropped as PyTorch)
//   weight [D, C, P, P], bias [D]; PyTorch Conv2d init (kaiming_uniform(a = sqrt(5)), bias
//   U(+-1/sqrt(C*P*P))). Its type_name is "Conv2d" so it prints and matches like PyTorch's.
// PatchEmbed: proj (PatchConv2d) then flatten(2).transpose(1, 2):  [B, C, H, W] -> [B, N, D],
//   N = (H/P) * (W/P), patches in row-major order.
#pragma once
#include "engine/generator.hpp"
#include "nn/module.hpp"

namespace quench::nn {

class PatchConv2d : public Module {
 public:
  PatchConv2d(int64_t in_channels, int64_t out_channels, int64_t patch, Generator& gen);
  std::string extra_repr() const override;
  // Output as [B, Ho*Wo, D] (the layout the GEMM produces; forward permutes it to [B, D, Ho, Wo]).
  Tensor forward_tokens(const Tensor& x);

  int64_t in_channels, out_channels, patch;
  Tensor weight, bias;

 protected:
  Tensor forward(const Tensor& x) override;
};

class PatchEmbed : public Module {
 public:
  PatchEmbed(int64_t patch, int64_t chans, int64_t dim, Generator& gen);
  PatchEmbed(int64_t patch, int64_t chans, int64_t dim);

 protected:
  Tensor forward(const Tensor& x) override;
};

}  // namespace quench::nn
