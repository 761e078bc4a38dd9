#include "nn/layers/vit.hpp"

#include "engine/ops.hpp"
#include "nn/init.hpp"
#include "nn/layers/block.hpp"
#include "nn/layers/layer_norm.hpp"
#include "nn/layers/linear.hpp"
#include "nn/layers/patch_dropout.hpp"
#include "nn/layers/patch_embed.hpp"
#include "nn/layers/sequential.hpp"

namespace quench::nn {

ViT::ViT(const ViTConfig& c) : ViT(c, default_generator()) {}

ViT::ViT(const ViTConfig& c, Generator& gen) : Module("ViT"), cfg(c) {
  QUENCH_CHECK(c.img > 0 && c.patch > 0 && c.img % c.patch == 0, "ViT: img (", c.img,
               ") must be a positive multiple of patch (", c.patch, ")");
  QUENCH_CHECK(c.chans > 0 && c.dim > 0 && c.depth >= 0 && c.heads > 0 && c.hidden > 0 && c.classes > 0,
               "ViT: sizes must be positive (chans ", c.chans, ", dim ", c.dim, ", depth ", c.depth,
               ", heads ", c.heads, ", hidden ", c.hidden, ", classes ", c.classes, ")");
  register_module("patch_embed", std::make_shared<PatchEmbed>(c.patch, c.chans, c.dim, gen));
  cls_token = register_parameter("cls_token", zeros({1, 1, c.dim}));
  pos_embed = register_parameter("pos_embed", zeros({1, c.num_patches() + 1, c.dim}));
  auto blocks = register_module("blocks", std::make_shared<Sequential>());
  for (int64_t i = 0; i < c.depth; ++i)
    blocks->push_back(std::make_shared<Block>(c.dim, c.heads, c.hidden, c.eps, gen));
  register_module("norm", std::make_shared<LayerNorm>(c.dim, c.eps));
  register_module("head", std::make_shared<Linear>(c.dim, c.classes, true, gen));
  init_weights(gen);
}

void ViT::init_weights(Generator& gen) {
  init::trunc_normal_(pos_embed, 0.0, 0.02, -2.0, 2.0, gen);
  init::zeros_(cls_token);
  // Every Linear in module order, as timm's named_apply (apply works during construction, when
  // the module is not yet owned by its shared_ptr).
  apply([&](Module& m) {
    auto* lin = dynamic_cast<Linear*>(&m);
    if (!lin) return;
    init::trunc_normal_(lin->weight, 0.0, 0.02, -2.0, 2.0, gen);
    if (lin->bias.defined()) init::zeros_(lin->bias);
  });
}

void ViT::init_weights_torch(Generator& gen) {
  init::normal_(pos_embed, 0.0, 0.02, gen);
  init::zeros_(cls_token);
  apply([&](Module& m) {
    if (auto* lin = dynamic_cast<Linear*>(&m)) lin->reset_parameters(gen);
  });
}

Tensor ViT::forward(const Tensor& images) {
  QUENCH_CHECK(images.dim() == 4 && images.size(1) == cfg.chans && images.size(2) == cfg.img &&
                   images.size(3) == cfg.img,
               "ViT: expected images [B, ", cfg.chans, ", ", cfg.img, ", ", cfg.img, "], got ",
               shape_str(images.sizes()));
  const int64_t B = images.size(0);
  Tensor x = (*child("patch_embed"))(images);                          // [B, N, D]
  x = cat({cls_token.expand({B, 1, cfg.dim}), x}, 1) + pos_embed;      // [B, N + 1, D]
  if (is_training() && patch_dropout > 0.0)                           // [B, K + 1, D]
    x = drop_patches(x, 1, patches_kept(cfg.num_patches(), patch_dropout), patch_generator);
  x = (*child("norm"))(run_blocks(x));                                 // [B, K + 1 or 1, D]
  return (*child("head"))(x.select(1, 0));                             // [B, classes]
}

Tensor ViT::run_blocks(const Tensor& x) {
  auto& blocks = static_cast<Sequential&>(*child("blocks"));
  ModulePtr norm = child("norm");
  // Only the CLS row reaches the head, so the last block may skip the other rows, unless a hook
  // watches the blocks or the final norm (it must see every row) or norm is not row-wise.
  if (blocks.size() == 0 || blocks.num_forward_hooks() > 0 || norm->any_forward_hooks() ||
      !norm->row_independent())
    return blocks(x);
  Tensor y = x;
  for (size_t i = 0; i + 1 < blocks.size(); ++i) y = (*blocks[i])(y);
  ModulePtr last = blocks[blocks.size() - 1];
  if (auto* prefix = dynamic_cast<PrefixForward*>(last.get())) {
    Tensor cls = prefix->forward_prefix({y}, 1);                        // [B, 1, D]
    if (cls.defined()) return cls;
  }
  return (*last)(y);
}

}  // namespace quench::nn
