#include "quant/int8_bert_layer.hpp"

#include "engine/autograd.hpp"
#include "nn/layers/activation.hpp"
#include "nn/layers/bert.hpp"
#include "quant/quantized_linear.hpp"
#include "quant/int8_mlp.hpp"

namespace quench::quant {

namespace {

// intermediate.dense, its GELU and output.dense seen as an MLP (fc1, act, fc2), for Int8Mlp.
std::shared_ptr<Int8Mlp> ffn_of(const nn::Module& layer) {
  nn::Module mlp("BertFeedForward");
  mlp.register_module("fc1", layer.child("intermediate")->child("dense"));
  mlp.register_module("act", layer.child("intermediate")->child("intermediate_act_fn"));
  mlp.register_module("fc2", layer.child("output")->child("dense"));
  return std::make_shared<Int8Mlp>(mlp);
}

// attention.output (BertSelfOutput: LayerNorm(dropout(dense(ctx)) + h)) as one GEMM with the residual
// in its epilogue, when it is a QuantizedLinear behind an inactive dropout and nothing hooks the modules.
bool attention_output_fused(const nn::Module& attention) {
  const nn::ModulePtr out = attention.child("output");
  const nn::ModulePtr dense = out->child("dense"), drop = out->child("dropout"), ln = out->child("LayerNorm");
  return attention.num_forward_hooks() == 0 && out->num_forward_hooks() == 0 && drop->num_forward_hooks() == 0 &&
         ln->num_forward_hooks() == 0 && dense->num_forward_hooks() == 0 && !drop->is_training() &&
         dynamic_cast<QuantizedLinear*>(dense.get()) != nullptr;
}

}  // namespace

Int8BertLayer::Int8BertLayer(nn::Module& layer) : Module("Int8BertLayer") {
  for (const char* n : {"attention", "intermediate", "output"}) register_module(n, layer.child(n));
  train(layer.is_training());
}

bool Int8BertLayer::fused() const {
  const nn::ModulePtr inter = child("intermediate"), out = child("output");
  const nn::ModulePtr drop = out->child("dropout"), ln = out->child("LayerNorm");
  return !is_training() && inter->num_forward_hooks() == 0 && out->num_forward_hooks() == 0 &&
         drop->num_forward_hooks() == 0 && ln->num_forward_hooks() == 0 && !drop->is_training() &&
         ffn_of(*this)->fused();
}

Tensor Int8BertLayer::forward(const Tensor& x) { return forward_multi({x}); }

Tensor Int8BertLayer::forward_multi(const tensor_list& inputs) {
  QUENCH_CHECK(inputs.size() == 1 || inputs.size() == 2,
               "Int8BertLayer: expected {hidden} or {hidden, key_padding_mask}, got ", inputs.size(), " inputs");
  const nn::ModulePtr attention = child("attention");
  const bool grad = GradMode::is_enabled() && inputs[0].requires_grad();
  Tensor a;  // [B, N, H]
  if (!grad && !is_training() && attention_output_fused(*attention)) {
    const nn::ModulePtr out = attention->child("output");
    Tensor ctx = (*attention->child("self"))(inputs);
    a = (*out->child("LayerNorm"))(static_cast<QuantizedLinear&>(*out->child("dense")).forward_plus(ctx, inputs[0]));
  } else {
    a = (*attention)(inputs);
  }
  if (!fused() || a.requires_grad()) {      // nn::BertLayer's composition
    Tensor i = (*child("intermediate"))(a);
    return (*child("output"))(tensor_list{i, a});
  }
  Tensor y = ffn_of(*this)->fused_forward(a, a);  // a + output.dense(gelu(intermediate.dense(a)))
  return (*child("output")->child("LayerNorm"))(y);
}

std::vector<std::string> fuse_int8_bert_layers(nn::Module& model) {
  std::vector<std::string> fused;
  for (const auto& [name, m] : model.named_modules()) {
    if (!dynamic_cast<nn::BertLayer*>(m.get()) || name.empty()) continue;
    if (!ffn_of(*m)->fused()) continue;
    model.set_submodule(name, std::make_shared<Int8BertLayer>(*m));
    fused.push_back(name);
  }
  return fused;
}

}  // namespace quench::quant
