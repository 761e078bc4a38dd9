// The text path of QAT + distillation: INC's BERT recipe (every layer's output, every layer's
// attention probabilities, the logits; MSE) through prepare_compression's hooks on a padded batch,
// fake-quantized attention matmuls, conversion to int8 (every Linear an Int8Linear, every embedding
// table a QuantizedEmbedding, each layer's
// feed-forward half fused (Int8BertLayer), the converted model equal to its fake-quant self bit for bit
// on every ISA path) and the int8 BERT checkpoint.
#include <doctest/doctest.h>

#include <cmath>

#include "distill/bert_recipe.hpp"
#include "distill/compression.hpp"
#include "distill/distillation.hpp"
#include "engine/ops.hpp"
#include "kernels/isa.hpp"
#include "nn/nn.hpp"
#include "nn/optim/adamw.hpp"
#include "quant/int8_io.hpp"
#include "quant/int8_linear.hpp"
#include "quant/qat_bert_attention.hpp"
#include "tests/gradcheck.hpp"
#include "tests/temp_dir.hpp"

using namespace quench;
using namespace quench::distill;

namespace {

nn::BertConfig tiny_bert(int64_t layers) {
  nn::BertConfig c;
  c.vocab_size = 40;
  c.hidden_size = 32;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 4;
  c.intermediate_size = 64;
  c.max_position_embeddings = 16;
  c.num_labels = 3;
  return c;
}

std::shared_ptr<nn::BertForSequenceClassification> make_bert(const nn::BertConfig& c, uint64_t seed) {
  Generator gen(seed);
  return std::make_shared<nn::BertForSequenceClassification>(c, gen);
}

// Four sequences of 10 positions, the last three padded after 7, 4 and 9 tokens.
tensor_list padded_batch(const nn::BertConfig& c) {
  Generator gen(21);
  const int64_t B = 4, N = 10, lengths[B] = {10, 7, 4, 9};
  std::vector<int32_t> ids(B * N), mask(B * N), types(B * N);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n) {
      const bool real = n < lengths[b];
      ids[b * N + n] = real ? 1 + static_cast<int32_t>(gen.next_u64() % (c.vocab_size - 1)) : 0;
      mask[b * N + n] = real;
      types[b * N + n] = real && n >= lengths[b] / 2;
    }
  return {tensor(ids, {B, N}), tensor(mask, {B, N}), tensor(types, {B, N})};
}

int count_type(nn::Module& m, const std::string& type) {
  int n = 0;
  for (const auto& nm : m.named_modules()) n += nm.second->type_name() == type;
  return n;
}

}  // namespace

TEST_CASE("BERT recipe: every layer's output and attention map and the logits, uniform layer mapping") {
  nn::BertConfig t = tiny_bert(4), s = tiny_bert(2);
  std::vector<LayerMapping> maps = bert_layer_mappings(s, t, {});
  REQUIRE(maps.size() == 5);
  CHECK(maps[0].student == "bert.encoder.layer.0");
  CHECK(maps[0].teacher == "bert.encoder.layer.1");  // (0 + 1) * 4 / 2 - 1
  CHECK(maps[1].student == "bert.encoder.layer.0.attention.self:probs");
  CHECK(maps[3].teacher == "bert.encoder.layer.3.attention.self:probs");
  CHECK(maps[4].student == "classifier");
  // A 12-layer model has INC's 25 taps.
  CHECK(bert_layer_mappings(tiny_bert(12), tiny_bert(12), {}).size() == 25);
  // Attention maps need equal head counts; the note says why they were left out.
  nn::BertConfig s2 = s;
  s2.num_attention_heads = 2;
  std::string note;
  CHECK(bert_layer_mappings(s2, t, {}, &note).size() == 3);
  CHECK(note.find("head counts") != std::string::npos);
}

TEST_CASE("BERT QAT + distillation: hooks, five MSE terms, convert on train end, int8 == fake quant") {
  const nn::BertConfig c = tiny_bert(2);
  auto teacher = make_bert(c, 1);
  auto student = make_bert(c, 2);
  student->load_state_dict(teacher->state_dict());
  {  // the student starts away from the teacher so every term is nonzero
    NoGradGuard ng;
    Generator g(5);
    for (auto& np : student->named_parameters())
      if (np.second.dim() == 2) Tensor(np.second).copy_(np.second + randn(np.second.sizes(), g) * 0.02);
  }
  REQUIRE(count_type(*student, "Linear") == 14);  // 6 per layer, pooler, classifier

  quant::QuantizationAwareTrainingConfig qcfg;
  qcfg.quantize_attention_matmuls = true;
  qcfg.freeze_observer_epoch = 1;
  auto cm = prepare_compression(student, {bert_distillation_config(teacher, c, c, {}), qcfg});
  cm.on_train_begin();
  CHECK(count_type(*cm.model(), "QATLinear") == 14);
  CHECK(count_type(*cm.model(), "QATEmbedding") == 3);  // word, position and token type tables
  CHECK(count_type(*cm.model(), "QATBertSelfAttention") == 2);
  optim::AdamW opt(cm.trainable_parameters(), optim::AdamWOptions(1e-3));
  const tensor_list x = padded_batch(c);
  const Tensor y = tensor(std::vector<int32_t>{0, 1, 2, 1}, {4});
  auto distiller = cm.component<DistillationComponent>();
  REQUIRE(distiller != nullptr);
  double first = 0, last = 0;
  for (int epoch = 0; epoch < 2; ++epoch) {
    cm.on_epoch_begin(epoch);
    for (int step = 0; step < 3; ++step) {
      cm.on_step_begin(step);
      Tensor out = (*cm.model())(x);
      Tensor loss = cm.on_after_compute_loss(x, out, cross_entropy(out, y));
      const auto& terms = distiller->last_terms();
      REQUIRE(terms.size() == 5);  // no task term: INC's recipe uses no ground truth
      CHECK(terms[1].first == "bert.encoder.layer.0.attention.self:probs");
      double sum = 0;
      for (const auto& t : terms) {
        CHECK(t.second.item<float>() > 0);
        sum += t.second.item<float>();
      }
      CHECK(loss.item<float>() == doctest::Approx(sum).epsilon(1e-5));
      (epoch == 0 && step == 0 ? first : last) = loss.item<float>();
      opt.zero_grad();
      loss.backward();
      cm.on_before_optimizer_step();
      opt.step();
      cm.on_step_end();
    }
    cm.on_epoch_end();
  }
  CHECK(last < first);  // the student moves toward the teacher
  cm.model()->eval();
  Tensor fq_logits;
  {
    NoGradGuard ng;
    fq_logits = (*cm.model())(x);
  }
  cm.on_train_end();
  CHECK(count_type(*cm.model(), "Int8Linear") == 14);
  CHECK(count_type(*cm.model(), "QuantizedEmbedding") == 3);
  CHECK(count_type(*cm.model(), "QATBertSelfAttention") == 2);  // stays, its quantizers frozen
  CHECK(count_type(*cm.model(), "Int8BertLayer") == 2);         // the fused feed-forward pass
  auto bert = std::dynamic_pointer_cast<nn::BertForSequenceClassification>(cm.model());
  REQUIRE(bert != nullptr);
  NoGradGuard ng;
  CHECK(testing::max_abs_diff((*bert)(x), fq_logits) == 0.0);

  SUBCASE("every ISA path gives the same logits") {
    const kernels::Isa prev = kernels::active_isa();
    std::vector<float> ref;
    for (int i = 0; i <= static_cast<int>(kernels::cpu_isa()); ++i) {
      const kernels::Isa isa = kernels::set_isa(static_cast<kernels::Isa>(i));
      CAPTURE(kernels::isa_name(isa));
      std::vector<float> v = (*bert)(x).to_vector<float>();
      if (ref.empty())
        ref = v;
      else
        CHECK(v == ref);
    }
    kernels::set_isa(prev);
  }
  SUBCASE("padding does not change a sequence's logits") {
    // Sequence 2 alone, cut to its 4 tokens, against its row in the padded batch.
    tensor_list one = {x[0].narrow(0, 2, 1).narrow(1, 0, 4).contiguous(),
                       x[1].narrow(0, 2, 1).narrow(1, 0, 4).contiguous(),
                       x[2].narrow(0, 2, 1).narrow(1, 0, 4).contiguous()};
    Tensor a = (*bert)(one), b = (*bert)(x).narrow(0, 2, 1).contiguous();
    CHECK(testing::max_abs_diff(a, b) < 1e-5);
  }
  SUBCASE("the int8 checkpoint round-trips bit for bit and names a file that is not a BERT") {
    testing::TempDir dir;
    quant::save_int8_bert(dir.file("bert_int8.safetensors"), *bert, {{"task", "text"}});
    auto back = quant::load_int8_bert(dir.file("bert_int8.safetensors"));
    CHECK(back->cfg.to_json() == bert->cfg.to_json());
    CHECK(count_type(*back, "QATBertSelfAttention") == 2);
    CHECK(count_type(*back, "Int8BertLayer") == 2);
    CHECK(count_type(*back, "QuantizedEmbedding") == 3);
    CHECK(testing::max_abs_diff((*back)(x), fq_logits) == 0.0);

    nn::NamedTensors ts;
    for (const auto& kv : bert->state_dict()) ts.emplace_back(kv.first, kv.second);
    nn::save_safetensors(dir.file("vit.safetensors"), ts, {{"model", "vit"}});
    CHECK_THROWS_WITH(quant::load_int8_bert(dir.file("vit.safetensors")),
                      doctest::Contains("vit.safetensors: metadata does not describe a BERT"));
    nn::save_safetensors(dir.file("bad.safetensors"), ts, {{"model", "bert"}, {"config", "{not json"}});
    CHECK_THROWS_WITH(quant::load_int8_bert(dir.file("bad.safetensors")),
                      doctest::Contains("bad.safetensors: the config metadata is not valid JSON"));
  }
}
