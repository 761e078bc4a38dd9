// BERT (nn/layers/bert.hpp) against the plain-PyTorch reference with Hugging Face's names
// (tests/golden/make_bert_golden.py): names and order, logits, loss and every gradient on a padded
// batch of pairs, every layer's output and attention probabilities; padding invariance; the
// config.json fields; the errors.
#include <doctest/doctest.h>

#include "engine/ops.hpp"
#include "nn/nn.hpp"
#include "tests/golden.hpp"
#include "tests/gradcheck.hpp"

using namespace quench;
using namespace quench::nn;
using quench::testing::scaled_err;

namespace {

const SafeTensorsFile& bert_golden() {
  static const SafeTensorsFile g = testing::load_golden("bert_golden.safetensors");
  return g;
}

std::shared_ptr<BertForSequenceClassification> golden_bert() {
  BertConfig c = BertConfig::from_json(nlohmann::json::parse(bert_golden().metadata.at("config")));
  Generator gen(0);
  auto m = std::make_shared<BertForSequenceClassification>(c, gen);
  StateDict sd;
  for (const auto& [k, v] : bert_golden().tensors)
    if (k.rfind("sd.", 0) == 0) sd.insert(k.substr(3), v);
  m->load_state_dict(sd, /*strict=*/true);
  m->eval();
  return m;
}

tensor_list golden_inputs() {
  const auto& g = bert_golden();
  return {g.at("input_ids"), g.at("attention_mask"), g.at("token_type_ids")};
}

constexpr double kTol = 1e-4;  // relative to each tensor's largest element

}  // namespace

TEST_CASE("BERT: parameter names and order are HF BertForSequenceClassification's") {
  auto m = golden_bert();
  std::vector<std::string> ours, theirs;
  for (const auto& [k, v] : m->named_parameters()) ours.push_back(k);
  for (const auto& k : bert_golden().names)
    if (k.rfind("grad.", 0) == 0) theirs.push_back(k.substr(5));
  // The golden file sorts its keys; PyTorch's order is named_parameters' order, checked by name set
  // here and by position on a few anchors.
  std::vector<std::string> sorted_ours = ours;
  std::sort(sorted_ours.begin(), sorted_ours.end());
  CHECK(sorted_ours == theirs);
  REQUIRE(ours.size() == 5 + 2 * 16 + 4);
  CHECK(ours.front() == "bert.embeddings.word_embeddings.weight");
  CHECK(ours[5] == "bert.encoder.layer.0.attention.self.query.weight");
  CHECK(ours[10] == "bert.encoder.layer.0.attention.self.value.bias");
  CHECK(ours[13] == "bert.encoder.layer.0.attention.output.LayerNorm.weight");
  CHECK(ours[15] == "bert.encoder.layer.0.intermediate.dense.weight");
  CHECK(ours[20] == "bert.encoder.layer.0.output.LayerNorm.bias");
  CHECK(ours[ours.size() - 4] == "bert.pooler.dense.weight");
  CHECK(ours.back() == "classifier.bias");
}

TEST_CASE("BERT: logits, loss and every gradient equal PyTorch's on a padded batch of pairs") {
  auto m = golden_bert();
  const auto& g = bert_golden();
  Tensor logits = (*m)(golden_inputs());
  REQUIRE(logits.sizes() == Shape{3, 3});
  CHECK(scaled_err(logits, g.at("logits")) < kTol);
  Tensor loss = cross_entropy(logits, g.at("labels"));
  CHECK(loss.item<float>() == doctest::Approx(g.at("loss").item<float>()).epsilon(kTol));
  loss.backward();
  int checked = 0;
  for (const auto& np : m->named_parameters()) {
    const std::string& name = np.first;
    const Tensor& p = np.second;
    REQUIRE_MESSAGE(p.grad().defined(), name);
    if (name.find("attention.self.key.bias") != std::string::npos) {
      // q . b_k adds the same amount to every key's score, which the softmax cancels: the true
      // gradient is zero and both sides hold only rounding noise (measured ~1e-9 here and there).
      CHECK_MESSAGE(testing::max_abs_diff(p.grad(), zeros_like(p.grad())) < 1e-6, name);
      CHECK_MESSAGE(testing::max_abs_diff(g.at("grad." + name), zeros_like(p.grad())) < 1e-6, name);
    } else {
      CHECK_MESSAGE(scaled_err(p.grad(), g.at("grad." + name)) < kTol, name);
    }
    ++checked;
  }
  CHECK(checked == 41);
  // The padding row of the word embeddings gets no gradient, as nn.Embedding(padding_idx = 0).
  Tensor gw = m->get_submodule("bert.embeddings.word_embeddings")->named_parameters()[0].second.grad();
  for (int64_t c = 0; c < gw.size(1); ++c) CHECK(gw.at({0, c}) == 0.0);
}

TEST_CASE("BERT: every layer's output and attention probabilities equal PyTorch's (hooks)") {
  auto m = golden_bert();
  std::vector<Tensor> hidden(2), probs(2);
  std::vector<ScopedHook> hooks;
  for (int i = 0; i < 2; ++i) {
    const std::string layer = "bert.encoder.layer." + std::to_string(i);
    hooks.emplace_back(m->get_submodule(layer)->register_forward_hook(
        [&, i](const ForwardCall& c) { hidden[i] = c.output; }));
    hooks.emplace_back(m->get_submodule(layer + ".attention.self")->register_forward_hook(
        [&, i](const ForwardCall& c) { probs[i] = c.extra("probs"); }));
  }
  Tensor logits = (*m)(golden_inputs());
  for (int i = 0; i < 2; ++i) {
    REQUIRE(hidden[i].defined());
    REQUIRE(probs[i].defined());
    CHECK(probs[i].sizes() == Shape{3, 4, 10, 10});
    CHECK(scaled_err(hidden[i], bert_golden().at("hidden." + std::to_string(i))) < kTol);
    CHECK(scaled_err(probs[i], bert_golden().at("probs." + std::to_string(i))) < kTol);
  }
  // Padded keys get exactly zero probability (row 2 has 6 tokens).
  for (int64_t q = 0; q < 10; ++q)
    for (int64_t k = 6; k < 10; ++k) CHECK(probs[0].at({2, 1, q, k}) == 0.0);
  // With hooks the same logits as without (the fused attention is the composed one).
  hooks.clear();
  CHECK(testing::max_abs_diff((*m)(golden_inputs()), logits) == 0.0);
}

TEST_CASE("BERT: a padded row gives the logits of the same row alone and unpadded") {
  auto m = golden_bert();
  const auto& g = bert_golden();
  Tensor all = (*m)(golden_inputs());
  for (int64_t r = 1; r < 3; ++r) {
    int64_t len = 0;
    for (int64_t c = 0; c < 10; ++c) len += g.at("attention_mask").at({r, c}) != 0.0;
    tensor_list one = {g.at("input_ids").narrow(0, r, 1).narrow(1, 0, len).contiguous(),
                       g.at("attention_mask").narrow(0, r, 1).narrow(1, 0, len).contiguous(),
                       g.at("token_type_ids").narrow(0, r, 1).narrow(1, 0, len).contiguous()};
    Tensor alone = (*m)(one);
    CHECK_MESSAGE(scaled_err(alone.select(0, 0), all.select(0, r)) < 1e-5, "row ", r);
  }
  // Without a mask the padding tokens are attended to, and the logits change.
  Tensor unmasked = (*m)(tensor_list{g.at("input_ids"), Tensor(), g.at("token_type_ids")});
  CHECK(testing::max_abs_diff(unmasked.select(0, 2), all.select(0, 2)) > 1e-4);
}

TEST_CASE("BERT: dropout in training mode, none in eval; gradients flow through the dropped probabilities") {
  BertConfig c = BertConfig::small(40, 2, 16);
  c.num_hidden_layers = 1;
  c.hidden_size = 16;
  c.num_attention_heads = 2;
  c.intermediate_size = 32;
  Generator gen(3);
  BertForSequenceClassification m(c, gen);
  Tensor ids = tensor(std::vector<int32_t>{2, 7, 9, 3, 2, 11, 3, 0}, {2, 4});
  Tensor mask = tensor(std::vector<int32_t>{1, 1, 1, 1, 1, 1, 1, 0}, {2, 4});
  m.eval();
  Tensor a = m(tensor_list{ids, mask}), b = m(tensor_list{ids, mask});
  CHECK(testing::max_abs_diff(a, b) == 0.0);
  m.train();
  Tensor t = m(tensor_list{ids, mask});
  CHECK(testing::max_abs_diff(t, a) > 0.0);
  t.sum().backward();
  for (const auto& np : m.named_parameters()) CHECK_MESSAGE(np.second.grad().defined(), np.first);
}

TEST_CASE("BERT: the HF init (N(0, 0.02), zero biases and padding row, LayerNorm ones)") {
  BertConfig c = BertConfig::small(1000, 2, 64);
  Generator gen(1);
  auto mp = std::make_shared<BertForSequenceClassification>(c, gen);
  BertForSequenceClassification& m = *mp;
  for (const auto& np : m.named_parameters()) {
    const std::string& name = np.first;
    std::vector<float> v = np.second.to_vector<float>();
    double sum = 0, sq = 0;
    for (float x : v) { sum += x; sq += double(x) * x; }
    const double mean = sum / v.size(), std = std::sqrt(sq / v.size() - mean * mean);
    if (name.find("LayerNorm.weight") != std::string::npos) CHECK_MESSAGE(mean == 1.0, name);
    else if (name.find("bias") != std::string::npos) CHECK_MESSAGE(sq == 0.0, name);
    else if (v.size() > 10000) CHECK_MESSAGE(std == doctest::Approx(0.02).epsilon(0.05), name);
  }
  Tensor w = m.get_submodule("bert.embeddings.word_embeddings")->named_parameters()[0].second;
  for (int64_t col = 0; col < c.hidden_size; ++col) CHECK(w.at({0, col}) == 0.0);
}

TEST_CASE("BertConfig: config.json fields round-trip; bad configs are refused naming the field") {
  BertConfig c = BertConfig::small(8000, 2, 128);
  c.id2label = {"ham", "spam"};
  nlohmann::json j = c.to_json();
  CHECK(j["model_type"] == "bert");
  CHECK(j["hidden_size"] == 256);
  CHECK(j["id2label"]["1"] == "spam");
  CHECK(j["label2id"]["ham"] == 0);
  BertConfig r = BertConfig::from_json(j);
  CHECK(r.to_json() == j);
  CHECK(r.num_labels == 2);
  CHECK(r.layer_norm_eps == 1e-12);

  auto bad = [&](const char* key, nlohmann::json v) {
    nlohmann::json b = j;
    b[key] = v;
    return b;
  };
  CHECK_THROWS_WITH_AS(BertConfig::from_json(bad("num_attention_heads", 3)),
                       doctest::Contains("multiple of num_attention_heads"), Error);
  CHECK_THROWS_WITH_AS(BertConfig::from_json(bad("hidden_act", "relu")), doctest::Contains("hidden_act 'relu'"), Error);
  CHECK_THROWS_WITH_AS(BertConfig::from_json(bad("vocab_size", "big")), doctest::Contains("wrong type"), Error);
  CHECK_THROWS_WITH_AS(BertConfig::from_json(bad("model_type", "gpt2")), doctest::Contains("model_type"), Error);
  CHECK_THROWS_WITH_AS(BertConfig::from_json(bad("position_embedding_type", "relative_key")),
                       doctest::Contains("position_embedding_type"), Error);
  CHECK_THROWS_WITH_AS(BertConfig::from_json(bad("hidden_dropout_prob", 1.5)),
                       doctest::Contains("hidden_dropout_prob"), Error);
  nlohmann::json keys = j;
  keys["id2label"] = {{"x", "ham"}};
  CHECK_THROWS_WITH_AS(BertConfig::from_json(keys), doctest::Contains("id2label"), Error);
}

TEST_CASE("BERT: wrong inputs are refused naming the input and both shapes") {
  BertConfig c = BertConfig::small(40, 2, 8);
  c.num_hidden_layers = 1;
  Generator gen(2);
  BertForSequenceClassification m(c, gen);
  Tensor ids = tensor(std::vector<int32_t>{2, 7, 9, 3}, {1, 4});
  CHECK_THROWS_WITH_AS(m(ids.to(kFloat32)), doctest::Contains("input_ids as int32 [batch, seq_len]"), Error);
  CHECK_THROWS_WITH_AS(m(tensor_list{ids, ones({1, 3}, kInt32)}), doctest::Contains("attention_mask has shape [1, 3]"),
                       Error);
  CHECK_THROWS_WITH_AS(m(tensor_list{ids, ones({1, 4}, kInt32), zeros({2, 4}, kInt32)}),
                       doctest::Contains("token_type_ids has shape [2, 4]"), Error);
  CHECK_THROWS_WITH_AS(m(zeros({1, 9}, kInt32)), doctest::Contains("exceeds max_position_embeddings (8)"), Error);
  CHECK_THROWS_WITH_AS(m(tensor(std::vector<int32_t>{2, 40}, {1, 2})), doctest::Contains("out of range"), Error);
  CHECK_THROWS_WITH_AS(m(tensor_list{ids, ones({1, 4}, kInt32), full({1, 4}, 2, kInt32)}),
                       doctest::Contains("out of range"), Error);
}
