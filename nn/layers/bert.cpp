#include "nn/layers/bert.hpp"

#include <cmath>

#include "engine/ops.hpp"
#include "nn/init.hpp"
#include "nn/layers/activation.hpp"
#include "nn/layers/embedding.hpp"
#include "nn/layers/layer_norm.hpp"
#include "nn/layers/linear.hpp"
#include "nn/layers/sequential.hpp"

namespace quench::nn {
namespace {

void check_ids(const Tensor& t, const char* what, const Shape& like) {
  QUENCH_CHECK(t.defined() && t.dtype() == kInt32 && t.dim() == 2, "BERT: expected ", what,
               " as int32 [batch, seq_len], got ", t.defined() ? dtype_name(t.dtype()) : "undefined", " ",
               t.defined() ? shape_str(t.sizes()) : "");
  QUENCH_CHECK(like.empty() || t.sizes() == like, "BERT: ", what, " has shape ", shape_str(t.sizes()),
               ", expected the input_ids' shape ", shape_str(like));
}

}  // namespace

Tensor key_padding_mask(const Tensor& attention_mask) {
  if (!attention_mask.defined()) return Tensor();
  Tensor pad = eq(attention_mask, 0.0);  // u8, 1 where padded
  const uint8_t* p = pad.data_ptr<uint8_t>();
  for (int64_t i = 0; i < pad.numel(); ++i)
    if (p[i]) return pad;
  return Tensor();
}

// ---- embeddings ----

BertEmbeddings::BertEmbeddings(const BertConfig& c, Generator& gen) : Module("BertEmbeddings"), cfg(c) {
  register_module("word_embeddings", std::make_shared<Embedding>(c.vocab_size, c.hidden_size, gen, c.pad_token_id));
  register_module("position_embeddings", std::make_shared<Embedding>(c.max_position_embeddings, c.hidden_size, gen));
  register_module("token_type_embeddings", std::make_shared<Embedding>(c.type_vocab_size, c.hidden_size, gen));
  register_module("LayerNorm", std::make_shared<LayerNorm>(c.hidden_size, c.layer_norm_eps));
  register_module("dropout", std::make_shared<Dropout>(c.hidden_dropout_prob));
}

Tensor BertEmbeddings::forward_multi(const tensor_list& inputs) {
  QUENCH_CHECK(inputs.size() == 1 || inputs.size() == 2,
               "BertEmbeddings: expected {input_ids} or {input_ids, token_type_ids}, got ", inputs.size(), " inputs");
  const Tensor& ids = inputs[0];
  check_ids(ids, "input_ids", {});
  const int64_t N = ids.size(1);
  QUENCH_CHECK(N <= cfg.max_position_embeddings, "BertEmbeddings: sequence length ", N,
               " exceeds max_position_embeddings (", cfg.max_position_embeddings,
               "); truncate the input (the tokenizer's max_length) or use a model with more positions");
  Tensor types = inputs.size() == 2 && inputs[1].defined() ? inputs[1] : zeros(ids.sizes(), kInt32);
  check_ids(types, "token_type_ids", ids.sizes());
  Tensor positions = arange(N, kInt32);                                      // [N]
  Tensor x = (*child("word_embeddings"))(ids) + (*child("token_type_embeddings"))(types);  // [B, N, H]
  x = x + (*child("position_embeddings"))(positions);                        // broadcast [N, H]
  return (*child("dropout"))((*child("LayerNorm"))(x));
}

// ---- attention ----

BertSelfAttention::BertSelfAttention(const BertConfig& c, Generator& gen)
    : Module("BertSelfAttention"), heads(c.num_attention_heads), head_dim(c.head_dim()) {
  scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  for (const char* name : {"query", "key", "value"})
    register_module(name, std::make_shared<Linear>(c.hidden_size, c.hidden_size, true, gen));
  register_module("dropout", std::make_shared<Dropout>(c.attention_probs_dropout_prob));
}

std::string BertSelfAttention::extra_repr() const {
  return "heads=" + std::to_string(heads) + ", head_dim=" + std::to_string(head_dim);
}

Tensor BertSelfAttention::forward(const Tensor& h) { return forward_multi({h}); }

Tensor BertSelfAttention::forward_multi(const tensor_list& inputs) {
  QUENCH_CHECK(inputs.size() == 1 || inputs.size() == 2,
               "BertSelfAttention: expected {hidden} or {hidden, key_padding_mask}, got ", inputs.size(), " inputs");
  const Tensor& h = inputs[0];
  QUENCH_CHECK(h.dim() == 3 && h.size(2) == heads * head_dim, "BertSelfAttention: expected hidden [B, N, ",
               heads * head_dim, "], got ", shape_str(h.sizes()));
  Tensor mask = inputs.size() == 2 ? inputs[1] : Tensor();
  // The engine's attention reads q, k, v packed side by side ([B, N, 3, heads, head_dim]).
  Tensor qkv = cat({(*child("query"))(h), (*child("key"))(h), (*child("value"))(h)}, 2);  // [B, N, 3H]
  ModulePtr drop = child("dropout");
  const bool dropping = drop->is_training() && static_cast<Dropout&>(*drop).p > 0;
  if (num_forward_hooks() == 0 && !dropping) return attention(qkv, heads, scale, mask);  // [B, N, H]
  Tensor probs = attention_probs(qkv, heads, scale, mask);  // [B, heads, N, N]
  emit("probs", probs);
  return attention_apply((*drop)(probs), qkv, heads);
}

BertResidualOutput::BertResidualOutput(const char* type, int64_t in, const BertConfig& c, Generator& gen)
    : Module(type) {
  register_module("dense", std::make_shared<Linear>(in, c.hidden_size, true, gen));
  register_module("LayerNorm", std::make_shared<LayerNorm>(c.hidden_size, c.layer_norm_eps));
  register_module("dropout", std::make_shared<Dropout>(c.hidden_dropout_prob));
}

Tensor BertResidualOutput::forward_multi(const tensor_list& inputs) {
  QUENCH_CHECK(inputs.size() == 2, type_name(), ": expected {x, residual}, got ", inputs.size(), " inputs");
  Tensor y = (*child("dropout"))((*child("dense"))(inputs[0]));
  return (*child("LayerNorm"))(y + inputs[1]);
}

BertAttention::BertAttention(const BertConfig& c, Generator& gen) : Module("BertAttention") {
  register_module("self", std::make_shared<BertSelfAttention>(c, gen));
  register_module("output", std::make_shared<BertResidualOutput>("BertSelfOutput", c.hidden_size, c, gen));
}

Tensor BertAttention::forward(const Tensor& x) { return forward_multi({x}); }

Tensor BertAttention::forward_multi(const tensor_list& inputs) {
  Tensor context = (*child("self"))(inputs);
  return (*child("output"))(tensor_list{context, inputs[0]});
}

// ---- feed-forward and layer ----

BertIntermediate::BertIntermediate(const BertConfig& c, Generator& gen) : Module("BertIntermediate") {
  register_module("dense", std::make_shared<Linear>(c.hidden_size, c.intermediate_size, true, gen));
  register_module("intermediate_act_fn", std::make_shared<GELU>());
}

Tensor BertIntermediate::forward(const Tensor& x) {
  return (*child("intermediate_act_fn"))((*child("dense"))(x));
}

BertLayer::BertLayer(const BertConfig& c, Generator& gen) : Module("BertLayer") {
  register_module("attention", std::make_shared<BertAttention>(c, gen));
  register_module("intermediate", std::make_shared<BertIntermediate>(c, gen));
  register_module("output", std::make_shared<BertResidualOutput>("BertOutput", c.intermediate_size, c, gen));
}

Tensor BertLayer::forward(const Tensor& x) { return forward_multi({x}); }

Tensor BertLayer::forward_multi(const tensor_list& inputs) {
  QUENCH_CHECK(inputs.size() == 1 || inputs.size() == 2,
               "BertLayer: expected {hidden} or {hidden, key_padding_mask}, got ", inputs.size(), " inputs");
  Tensor h = (*child("attention"))(inputs);                          // [B, N, H]
  Tensor i = (*child("intermediate"))(h);                            // [B, N, I]
  return (*child("output"))(tensor_list{i, h});                      // [B, N, H]
}

BertPooler::BertPooler(const BertConfig& c, Generator& gen) : Module("BertPooler") {
  register_module("dense", std::make_shared<Linear>(c.hidden_size, c.hidden_size, true, gen));
}

Tensor BertPooler::forward(const Tensor& hidden) {
  QUENCH_CHECK(hidden.dim() == 3, "BertPooler: expected hidden [B, N, H], got ", shape_str(hidden.sizes()));
  return tanh((*child("dense"))(hidden.select(1, 0)));
}

// ---- model ----

BertModel::BertModel(const BertConfig& c, Generator& gen) : Module("BertModel"), cfg(c) {
  c.validate();
  register_module("embeddings", std::make_shared<BertEmbeddings>(c, gen));
  auto encoder = register_module("encoder", std::make_shared<Module>("BertEncoder"));
  auto layers = encoder->register_module("layer", std::make_shared<Sequential>());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(std::make_shared<BertLayer>(c, gen));
  register_module("pooler", std::make_shared<BertPooler>(c, gen));
}

Tensor BertModel::forward(const Tensor& input_ids) { return forward_multi({input_ids}); }

Tensor BertModel::forward_multi(const tensor_list& inputs) {
  QUENCH_CHECK(!inputs.empty() && inputs.size() <= 3,
               "BertModel: expected {input_ids[, attention_mask[, token_type_ids]]}, got ", inputs.size(), " inputs");
  const Tensor& ids = inputs[0];
  check_ids(ids, "input_ids", {});
  Tensor mask = inputs.size() >= 2 ? inputs[1] : Tensor();
  if (mask.defined())
    QUENCH_CHECK(mask.sizes() == ids.sizes(), "BertModel: attention_mask has shape ", shape_str(mask.sizes()),
                 ", expected the input_ids' shape ", shape_str(ids.sizes()));
  Tensor types = inputs.size() == 3 ? inputs[2] : Tensor();
  Tensor x = (*child("embeddings"))(tensor_list{ids, types});          // [B, N, H]
  Tensor pad = key_padding_mask(mask);
  ModulePtr layers = child("encoder")->child("layer");
  return pad.defined() ? (*layers)(tensor_list{x, pad}) : (*layers)(x);  // [B, N, H]
}

BertForSequenceClassification::BertForSequenceClassification(const BertConfig& c)
    : BertForSequenceClassification(c, default_generator()) {}

BertForSequenceClassification::BertForSequenceClassification(const BertConfig& c, Generator& gen)
    : Module("BertForSequenceClassification"), cfg(c) {
  register_module("bert", std::make_shared<BertModel>(c, gen));
  register_module("dropout", std::make_shared<Dropout>(c.hidden_dropout_prob));
  register_module("classifier", std::make_shared<Linear>(c.hidden_size, c.num_labels, true, gen));
  init_weights(gen);
}

void BertForSequenceClassification::init_weights(Generator& gen) {
  const double std = cfg.initializer_range;
  apply([&](Module& m) {
    if (auto* lin = dynamic_cast<Linear*>(&m)) {
      init::normal_(lin->weight, 0.0, std, gen);
      if (lin->bias.defined()) init::zeros_(lin->bias);
    } else if (auto* emb = dynamic_cast<Embedding*>(&m)) {
      init::normal_(emb->weight, 0.0, std, gen);
      emb->zero_padding_row();
    } else if (auto* ln = dynamic_cast<LayerNorm*>(&m)) {
      if (ln->weight.defined()) init::ones_(ln->weight);
      if (ln->bias.defined()) init::zeros_(ln->bias);
    }
  });
}

Tensor BertForSequenceClassification::forward(const Tensor& input_ids) { return forward_multi({input_ids}); }

Tensor BertForSequenceClassification::forward_multi(const tensor_list& inputs) {
  ModulePtr bert = child("bert");
  Tensor hidden = (*bert)(inputs);                                    // [B, N, H]
  Tensor pooled = (*bert->child("pooler"))(hidden);                   // [B, H]
  return (*child("classifier"))((*child("dropout"))(pooled));         // [B, num_labels]
}

}  // namespace quench::nn
