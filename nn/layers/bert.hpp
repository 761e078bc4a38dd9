// BERT for sequence classification, module for module Hugging Face's BertForSequenceClassification,
// so its state dict loads unchanged (tests/golden/bert_reference.py is the PyTorch twin):
//   bert.embeddings.{word,position,token_type}_embeddings.weight, bert.embeddings.LayerNorm
//   bert.encoder.layer.N.attention.self.{query,key,value}     Linear(H, H) each
//   bert.encoder.layer.N.attention.output.{dense, LayerNorm}  post-norm: LN(x + dense(context))
//   bert.encoder.layer.N.intermediate.dense                   Linear(H, I) + GELU (erf)
//   bert.encoder.layer.N.output.{dense, LayerNorm}            LN(h + dense(gelu(...)))
//   bert.pooler.dense                                          tanh(dense(hidden[:, 0]))
//   classifier                                                 Linear(H, num_labels)
// Inputs (forward_multi): {input_ids} | {input_ids, attention_mask} | {input_ids, attention_mask,
// token_type_ids}, each [B, N]; ids int32; attention_mask any dtype, 1 = a real token, 0 = padding
// (HF's convention); padding keys get probability 0 (HF adds finfo.min to their scores, which gives
// the same zeros as long as a row has one real token, as every row with a [CLS] has).
// Dropout as HF in training (hidden_dropout_prob after embeddings, attention output, FFN output
// and before the classifier; attention_probs_dropout_prob on the probabilities). Hooks on a
// BertSelfAttention see the probabilities before dropout as extra output "probs" [B, heads, N, N].
#pragma once
#include "engine/generator.hpp"
#include "nn/layers/bert_config.hpp"
#include "nn/module.hpp"

namespace quench::nn {

// word + token_type + position embeddings, LayerNorm, dropout.  {ids, types} [B, N] -> [B, N, H]
class BertEmbeddings : public Module {
 public:
  BertEmbeddings(const BertConfig& cfg, Generator& gen);
  BertConfig cfg;

 protected:
  Tensor forward_multi(const tensor_list& inputs) override;  // {input_ids} or {input_ids, token_type_ids}
};

// Multi-head attention on separate query / key / value projections.  {h [B, N, H], pad u8 [B, N]} -> context
class BertSelfAttention : public Module {
 public:
  BertSelfAttention(const BertConfig& cfg, Generator& gen);
  std::string extra_repr() const override;
  int64_t heads, head_dim;
  double scale;

 protected:
  Tensor forward(const Tensor& h) override;
  Tensor forward_multi(const tensor_list& inputs) override;  // {h} or {h, key_padding_mask}
};

// dense, dropout, residual, LayerNorm: BertSelfOutput (attention.output) and BertOutput (output).
//   {x [B, N, in], residual [B, N, H]} -> LN(dropout(dense(x)) + residual)
class BertResidualOutput : public Module {
 public:
  BertResidualOutput(const char* type_name, int64_t in, const BertConfig& cfg, Generator& gen);
  bool row_independent() const override { return children_row_independent(); }

 protected:
  Tensor forward_multi(const tensor_list& inputs) override;
};

// self + output.  {x [B, N, H], pad} -> [B, N, H]
class BertAttention : public Module {
 public:
  BertAttention(const BertConfig& cfg, Generator& gen);

 protected:
  Tensor forward(const Tensor& x) override;
  Tensor forward_multi(const tensor_list& inputs) override;
};

// dense + GELU.  [B, N, H] -> [B, N, I]
class BertIntermediate : public Module {
 public:
  BertIntermediate(const BertConfig& cfg, Generator& gen);
  bool row_independent() const override { return children_row_independent(); }

 protected:
  Tensor forward(const Tensor& x) override;
};

// attention, intermediate, output: one encoder layer.  {x [B, N, H], pad} -> [B, N, H]
class BertLayer : public Module {
 public:
  BertLayer(const BertConfig& cfg, Generator& gen);

 protected:
  Tensor forward(const Tensor& x) override;
  Tensor forward_multi(const tensor_list& inputs) override;
};

// tanh(dense(hidden[:, 0])): the [CLS] token's summary.  [B, N, H] -> [B, H]
class BertPooler : public Module {
 public:
  BertPooler(const BertConfig& cfg, Generator& gen);

 protected:
  Tensor forward(const Tensor& hidden) override;
};

// embeddings, encoder (layer.0 .. layer.L-1), pooler.  inputs as BertForSequenceClassification -> [B, N, H]
// (the last hidden state; the pooler is a child for the state dict's names and is run by the caller).
class BertModel : public Module {
 public:
  BertModel(const BertConfig& cfg, Generator& gen);
  BertConfig cfg;

 protected:
  Tensor forward(const Tensor& input_ids) override;
  Tensor forward_multi(const tensor_list& inputs) override;
};

class BertForSequenceClassification : public Module {
 public:
  explicit BertForSequenceClassification(const BertConfig& cfg);
  BertForSequenceClassification(const BertConfig& cfg, Generator& gen);
  // HF's _init_weights: Linear and Embedding N(0, initializer_range) with zero bias and a zero
  // padding row, LayerNorm ones / zeros. The constructor already calls it.
  void init_weights(Generator& gen);

  BertConfig cfg;

 protected:
  Tensor forward(const Tensor& input_ids) override;
  Tensor forward_multi(const tensor_list& inputs) override;  // -> logits [B, num_labels]
};

// The u8 key-padding mask [B, N] (1 = padding) of an HF attention_mask (1 = token), or an undefined
// tensor when nothing is padded (the attention then skips the mask).
Tensor key_padding_mask(const Tensor& attention_mask);

}  // namespace quench::nn
