// Vision Transformer, parameter for parameter the model of vit_reference.py (timm layout), so a
// PyTorch state_dict loads unchanged.
//   images [B, chans, img, img] float (normalized) -> logits [B, classes]
//   patch_embed.proj.{weight [D, C, P, P], bias [D]}; cls_token [1, 1, D]; pos_embed [1, N + 1, D];
//   blocks.{i} (Block: norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2); norm [D]; head [classes, D].
//   N = (img / patch)^2; classification reads the CLS token after the final norm.
//   The other rows of the last block never reach the head, so unless a hook watches them the last
//   block computes the CLS row alone (nn::PrefixForward), which leaves 7/8 of the reference ViT's
//   GEMM work (PyTorch's reference computes every row): the same logits bit for bit above 32 images
//   (fewer take sgemm's dot-product tiles, which sum in another order: equal to 1e-5), gradients equal
//   to 1e-6.
//
// Init (timm VisionTransformer.init_weights with weight_init = '', checked against timm 0.9):
//   pos_embed trunc_normal(std .02, bounds +-2), every Linear weight trunc_normal(std .02) with zero
//   bias, LayerNorm ones / zeros, patch_embed.proj PyTorch's Conv2d default (timm leaves it alone).
//   cls_token: zeros, as vit_reference.py (timm draws N(0, 1e-6), a negligible difference).
//   vit_reference.py itself keeps PyTorch's module defaults: init_weights_torch gives those (Linear
//   kaiming_uniform(a = sqrt 5) with uniform bias, pos_embed N(0, .02)); in short schedules on
//   Fashion-MNIST they train faster than timm's small weights (`quench train --init torch`).
#pragma once
#include "engine/generator.hpp"
#include "nn/module.hpp"

namespace quench::nn {

struct ViTConfig {
  int64_t img = 28, patch = 4, chans = 1, dim = 128, depth = 6, heads = 4, hidden = 512, classes = 10;
  double eps = 1e-6;  // LayerNorm eps, as the reference
  int64_t num_patches() const { return (img / patch) * (img / patch); }
};

class ViT : public Module {
 public:
  explicit ViT(const ViTConfig& cfg = {});
  ViT(const ViTConfig& cfg, Generator& gen);
  // timm init (see above); the constructor already calls it.
  void init_weights(Generator& gen);
  // vit_reference.py's init (PyTorch's module defaults; see above).
  void init_weights_torch(Generator& gen);

  ViTConfig cfg;
  Tensor cls_token, pos_embed;

  // PatchDropout (nn/layers/patch_dropout.hpp, timm's patch_drop): in training, each image keeps
  // patches_kept(N, patch_dropout) of its N patch tokens, drawn from patch_generator, and its CLS
  // token; the blocks run on those rows only. 0 (the default) or eval mode: every token. Not part of
  // the state dict; reseed the generator for reproducible runs (quench train does, per step).
  double patch_dropout = 0.0;
  Generator patch_generator;

 protected:
  Tensor forward(const Tensor& images) override;

 private:
  Tensor run_blocks(const Tensor& x);  // [B, N + 1, D] -> [B, N + 1, D], or [B, 1, D] (CLS row only)
};

}  // namespace quench::nn
