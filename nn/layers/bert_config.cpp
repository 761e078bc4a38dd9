#include "nn/layers/bert_config.hpp"

#include "engine/error.hpp"

namespace quench::nn {

BertConfig BertConfig::small(int64_t vocab, int64_t labels, int64_t max_positions) {
  BertConfig c;
  c.vocab_size = vocab;
  c.hidden_size = 256;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 4;
  c.intermediate_size = 1024;
  c.max_position_embeddings = max_positions;
  c.num_labels = labels;
  return c;
}

std::string BertConfig::label_name(int64_t i) const {
  if (i >= 0 && i < static_cast<int64_t>(id2label.size())) return id2label[i];
  return "LABEL_" + std::to_string(i);
}

void BertConfig::validate() const {
  auto positive = [](int64_t v, const char* name) {
    QUENCH_CHECK(v > 0, "BertConfig: ", name, " must be positive, got ", v);
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  QUENCH_CHECK(num_hidden_layers >= 0, "BertConfig: num_hidden_layers must be >= 0, got ", num_hidden_layers);
  positive(num_attention_heads, "num_attention_heads");
  positive(intermediate_size, "intermediate_size");
  positive(max_position_embeddings, "max_position_embeddings");
  positive(type_vocab_size, "type_vocab_size");
  positive(num_labels, "num_labels");
  QUENCH_CHECK(hidden_size % num_attention_heads == 0, "BertConfig: hidden_size (", hidden_size,
               ") must be a multiple of num_attention_heads (", num_attention_heads, ")");
  QUENCH_CHECK(pad_token_id >= 0 && pad_token_id < vocab_size, "BertConfig: pad_token_id ", pad_token_id,
               " is outside the vocabulary [0, ", vocab_size, ")");
  QUENCH_CHECK(hidden_act == "gelu", "BertConfig: hidden_act '", hidden_act,
               "' is not supported (only 'gelu', the exact erf GELU of BERT)");
  QUENCH_CHECK(layer_norm_eps > 0, "BertConfig: layer_norm_eps must be positive, got ", layer_norm_eps);
  auto prob = [](double p, const char* name) {
    QUENCH_CHECK(p >= 0 && p < 1, "BertConfig: ", name, " must be in [0, 1), got ", p);
  };
  prob(hidden_dropout_prob, "hidden_dropout_prob");
  prob(attention_probs_dropout_prob, "attention_probs_dropout_prob");
  QUENCH_CHECK(id2label.empty() || static_cast<int64_t>(id2label.size()) == num_labels, "BertConfig: id2label has ",
               id2label.size(), " names for num_labels = ", num_labels);
}

nlohmann::json BertConfig::to_json() const {
  nlohmann::json j = {
      {"architectures", {"BertForSequenceClassification"}},
      {"model_type", "bert"},
      {"vocab_size", vocab_size},
      {"hidden_size", hidden_size},
      {"num_hidden_layers", num_hidden_layers},
      {"num_attention_heads", num_attention_heads},
      {"intermediate_size", intermediate_size},
      {"max_position_embeddings", max_position_embeddings},
      {"type_vocab_size", type_vocab_size},
      {"pad_token_id", pad_token_id},
      {"hidden_act", hidden_act},
      {"layer_norm_eps", layer_norm_eps},
      {"hidden_dropout_prob", hidden_dropout_prob},
      {"attention_probs_dropout_prob", attention_probs_dropout_prob},
      {"initializer_range", initializer_range},
      {"position_embedding_type", "absolute"},
  };
  nlohmann::json id2 = nlohmann::json::object(), label2 = nlohmann::json::object();
  for (int64_t i = 0; i < num_labels; ++i) {
    id2[std::to_string(i)] = label_name(i);
    label2[label_name(i)] = i;
  }
  j["id2label"] = id2;
  j["label2id"] = label2;
  return j;
}

BertConfig BertConfig::from_json(const nlohmann::json& j) {
  QUENCH_CHECK(j.is_object(), "BertConfig: expected a JSON object (config.json), got ", j.type_name());
  if (j.contains("model_type"))
    QUENCH_CHECK(j["model_type"] == "bert", "BertConfig: model_type is ", j["model_type"].dump(), ", expected \"bert\"");
  if (j.contains("position_embedding_type"))
    QUENCH_CHECK(j["position_embedding_type"] == "absolute", "BertConfig: position_embedding_type ",
                 j["position_embedding_type"].dump(), " is not supported (only \"absolute\")");
  BertConfig c;
  try {
    auto get_int = [&](const char* k, int64_t& v) { if (j.contains(k)) v = j.at(k).get<int64_t>(); };
    auto get_num = [&](const char* k, double& v) { if (j.contains(k)) v = j.at(k).get<double>(); };
    get_int("vocab_size", c.vocab_size);
    get_int("hidden_size", c.hidden_size);
    get_int("num_hidden_layers", c.num_hidden_layers);
    get_int("num_attention_heads", c.num_attention_heads);
    get_int("intermediate_size", c.intermediate_size);
    get_int("max_position_embeddings", c.max_position_embeddings);
    get_int("type_vocab_size", c.type_vocab_size);
    get_int("num_labels", c.num_labels);
    get_int("pad_token_id", c.pad_token_id);
    if (j.contains("hidden_act")) c.hidden_act = j.at("hidden_act").get<std::string>();
    get_num("layer_norm_eps", c.layer_norm_eps);
    get_num("hidden_dropout_prob", c.hidden_dropout_prob);
    get_num("attention_probs_dropout_prob", c.attention_probs_dropout_prob);
    get_num("initializer_range", c.initializer_range);
    if (j.contains("id2label")) {
      const auto& m = j.at("id2label");
      c.id2label.assign(m.size(), "");
      for (auto it = m.begin(); it != m.end(); ++it) {
        const int64_t i = std::stoll(it.key());
        QUENCH_CHECK(i >= 0 && i < static_cast<int64_t>(m.size()), "BertConfig: id2label key ", it.key(),
                     " is not in [0, ", m.size(), ")");
        c.id2label[i] = it.value().get<std::string>();
      }
      c.num_labels = static_cast<int64_t>(c.id2label.size());
    }
  } catch (const nlohmann::json::exception& e) {
    QUENCH_CHECK(false, "BertConfig: a field has the wrong type: ", e.what());
  } catch (const std::logic_error& e) {  // std::stoll on a non-numeric id2label key
    QUENCH_CHECK(false, "BertConfig: id2label keys must be integers: ", e.what());
  }
  c.validate();
  return c;
}

}  // namespace quench::nn
