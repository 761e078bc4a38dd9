// Text classifiers on disk: a BERT (FP32 or int8) with everything needed to classify raw text.
//
// FP32 file (quench train --task text): the state dict under Hugging Face's names
// (bert.encoder.layer.0.attention.self.query.weight, ..., classifier.bias), so PyTorch's
// BertForSequenceClassification (tests/golden/bert_reference.py, or transformers') loads it with
// load_state_dict(strict=True); last.safetensors also holds "optim." state. Int8 file (quench distill /
// quantize --task text): quant::save_int8_bert's layout. String metadata of both:
//   "format"      "quench.text.v1" (FP32) or "quench-int8"
//   "model"       "bert"
//   "config"      config.json (HF field names, id2label / label2id from the classes)
//   "vocab"       the WordPiece vocabulary, one token per line (vocab.txt's content)
//   "tokenizer"   {"do_lower_case": .., "max_length": ..}
//   "classes"     JSON array of the class names
// plus the command's record ("train", "recipe", "progress").
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/io/safetensors.hpp"
#include "nn/layers/bert.hpp"
#include "nn/text/wordpiece.hpp"

namespace quench::cli {

inline constexpr const char* kTextCheckpointFormat = "quench.text.v1";

struct TextModel {
  std::shared_ptr<nn::BertForSequenceClassification> bert;
  bool int8 = false;
  std::vector<std::string> vocab;
  bool do_lower_case = true;
  int64_t max_length = 128;
  std::vector<std::string> classes;
  std::shared_ptr<nn::WordPieceTokenizer> tokenizer;  // built from vocab / do_lower_case
  nn::Metadata metadata;                              // the file's, when loaded

  int32_t pad_id() const { return static_cast<int32_t>(bert->cfg.pad_token_id); }
  // The metadata above (format excepted) for a file of this model.
  nn::Metadata text_metadata() const;
};

// Whether a file's metadata describes a text model ("model" = "bert"); a path may also be a Hugging
// Face BERT folder.
bool is_text_checkpoint(const nn::Metadata& md);
bool is_text_checkpoint_file(const std::string& path);
// FP32 or int8, or a Hugging Face folder; the model in eval mode. Errors name the file and what is
// missing.
TextModel load_text_model(const std::string& path);

// A Hugging Face model folder as save_pretrained writes it for BertForSequenceClassification:
// config.json (model_type "bert", id2label for the classes), model.safetensors (the state dict),
// vocab.txt, and optionally tokenizer_config.json (do_lower_case, model_max_length; the token limit
// is capped at max_position_embeddings).
bool is_hf_bert_folder(const std::string& dir);
TextModel load_hf_bert_folder(const std::string& dir);
// Writes an FP32 model as such a folder, each file atomically; transformers' from_pretrained and the
// PyTorch reference (tests/golden/bert_reference.py) load it.
void save_hf_bert_folder(const std::string& dir, const TextModel& m);
// FP32: model weights plus `optim` (prefixed "optim."), atomically.
void save_text_fp32(const std::string& path, const TextModel& m, const nn::StateDict& optim = {},
                    const nn::Metadata& extra = {});
void save_text_int8(const std::string& path, const TextModel& m, const nn::Metadata& extra = {});

}  // namespace quench::cli
