// The sizes of a BERT encoder, in the field names of Hugging Face's BertConfig (config.json), so a
// checkpoint's metadata reads like the config.json beside a PyTorch checkpoint.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace quench::nn {

struct BertConfig {
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  int64_t num_labels = 2;
  int64_t pad_token_id = 0;
  std::string hidden_act = "gelu";  // erf GELU, the only activation supported
  double layer_norm_eps = 1e-12;
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  double initializer_range = 0.02;
  std::vector<std::string> id2label;  // class names by index (empty: HF's LABEL_0, LABEL_1, ...)

  // BERT-small as the text recipe trains it from scratch: 4 layers, hidden 256, 4 heads, 1024.
  static BertConfig small(int64_t vocab_size, int64_t num_labels, int64_t max_position_embeddings = 128);

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  std::string label_name(int64_t i) const;
  // Throws naming the first bad field.
  void validate() const;
  // config.json's fields ("model_type": "bert", "architectures", id2label / label2id included).
  nlohmann::json to_json() const;
  // Reads config.json's fields; missing ones keep BertConfig's defaults (HF's). num_labels comes from
  // id2label when present.
  static BertConfig from_json(const nlohmann::json& j);
};

}  // namespace quench::nn
