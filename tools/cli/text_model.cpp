#include "tools/cli/text_model.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/error.hpp"
#include "nn/io/atomic_file.hpp"
#include "quant/int8_io.hpp"

namespace quench::cli {

namespace {

std::string join_lines(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& t : v) s += t + "\n";
  return s;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

const std::string& meta(const nn::Metadata& md, const std::string& key, const std::string& path) {
  auto it = md.find(key);
  QUENCH_CHECK(it != md.end(), path, ": metadata has no '", key,
               "'; not a text checkpoint written by quench (train / distill / quantize --task text)");
  return it->second;
}

nlohmann::json parse(const std::string& text, const std::string& key, const std::string& path) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  QUENCH_CHECK(!j.is_discarded(), path, ": metadata '", key, "' is not valid JSON");
  return j;
}

}  // namespace

nn::Metadata TextModel::text_metadata() const {
  nn::BertConfig c = bert->cfg;
  c.id2label = classes;
  return {{"model", "bert"},
          {"config", c.to_json().dump()},
          {"vocab", join_lines(vocab)},
          {"tokenizer", nlohmann::json{{"do_lower_case", do_lower_case}, {"max_length", max_length}}.dump()},
          {"classes", nlohmann::json(classes).dump()}};
}

bool is_text_checkpoint(const nn::Metadata& md) {
  auto it = md.find("model");
  return it != md.end() && it->second == "bert";
}

bool is_text_checkpoint_file(const std::string& path) {
  if (std::filesystem::is_directory(path)) return is_hf_bert_folder(path);
  return is_text_checkpoint(nn::load_safetensors(path).metadata);
}

namespace {

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  QUENCH_CHECK(in, path, ": cannot open");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  QUENCH_CHECK(!j.is_discarded() && j.is_object(), path, ": not a JSON object");
  return j;
}

// The model's tokenizer and its eval mode, once bert, vocab and the options are set.
void finish(TextModel& m, const std::string& path) {
  QUENCH_CHECK(static_cast<int64_t>(m.vocab.size()) == m.bert->cfg.vocab_size, path, ": the vocabulary has ",
               m.vocab.size(), " tokens but the model's vocab_size is ", m.bert->cfg.vocab_size);
  QUENCH_CHECK(static_cast<int64_t>(m.classes.size()) == m.bert->cfg.num_labels, path, ": ", m.classes.size(),
               " class names for a model of ", m.bert->cfg.num_labels, " labels");
  nn::WordPieceOptions to;
  to.do_lower_case = m.do_lower_case;
  m.tokenizer = std::make_shared<nn::WordPieceTokenizer>(m.vocab, to);
  m.bert->eval();
}

}  // namespace

bool is_hf_bert_folder(const std::string& dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir) || !fs::is_regular_file(dir + "/config.json")) return false;
  std::ifstream in(dir + "/config.json");
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return j.is_object() && j.value("model_type", std::string()) == "bert";
}

TextModel load_hf_bert_folder(const std::string& dir) {
  for (const char* f : {"config.json", "model.safetensors", "vocab.txt"})
    QUENCH_CHECK(std::filesystem::is_regular_file(dir + "/" + f), dir, ": a Hugging Face BERT folder needs ", f,
                 " (save_pretrained writes config.json and model.safetensors, the tokenizer vocab.txt)");
  TextModel m;
  nn::BertConfig cfg;
  try {
    cfg = nn::BertConfig::from_json(read_json_file(dir + "/config.json"));
  } catch (const Error& e) {
    throw Error(dir + "/config.json: " + e.what());
  }
  m.bert = std::make_shared<nn::BertForSequenceClassification>(cfg);
  const std::string weights = dir + "/model.safetensors";
  nn::SafeTensorsFile f = nn::load_safetensors(weights);
  nn::StateDict sd;
  for (const auto& name : f.names)
    if (name != "bert.embeddings.position_ids") sd.insert(name, f.tensors.at(name));  // a buffer older HF saved
  try {
    m.bert->load_state_dict(sd, /*strict=*/true);
  } catch (const Error& e) {
    throw Error(weights + ": " + e.what());
  }
  m.vocab = nn::WordPieceTokenizer::from_vocab_file(dir + "/vocab.txt").vocab();
  m.max_length = cfg.max_position_embeddings;
  if (std::filesystem::is_regular_file(dir + "/tokenizer_config.json")) {
    const nlohmann::json t = read_json_file(dir + "/tokenizer_config.json");
    m.do_lower_case = t.value("do_lower_case", true);
    if (t.contains("model_max_length") && t["model_max_length"].is_number_integer())
      m.max_length = std::min(m.max_length, t["model_max_length"].get<int64_t>());
  }
  for (int64_t i = 0; i < cfg.num_labels; ++i) m.classes.push_back(cfg.label_name(i));
  m.metadata = {{"model", "bert"}, {"source", dir}};
  finish(m, dir);
  return m;
}

void save_hf_bert_folder(const std::string& dir, const TextModel& m) {
  QUENCH_CHECK(!m.int8, "export: ", dir, ": an int8 model has no Hugging Face form; export the FP32 teacher");
  std::filesystem::create_directories(dir);
  nn::BertConfig c = m.bert->cfg;
  c.id2label = m.classes;
  const std::string config = c.to_json().dump(2) + "\n";
  nn::write_file_atomic(dir + "/config.json", {config}, "export: " + dir + "/config.json");
  nn::NamedTensors ts;
  for (const auto& kv : m.bert->state_dict()) ts.emplace_back(kv.first, kv.second);
  nn::save_safetensors(dir + "/model.safetensors", ts, {{"format", "pt"}});  // as transformers writes it
  nn::WordPieceTokenizer(m.vocab).save_vocab(dir + "/vocab.txt");
  const std::string tok = nlohmann::json{{"tokenizer_class", "BertTokenizer"},
                                         {"do_lower_case", m.do_lower_case},
                                         {"model_max_length", m.max_length},
                                         {"unk_token", "[UNK]"},
                                         {"sep_token", "[SEP]"},
                                         {"pad_token", "[PAD]"},
                                         {"cls_token", "[CLS]"},
                                         {"mask_token", "[MASK]"}}
                              .dump(2) + "\n";
  nn::write_file_atomic(dir + "/tokenizer_config.json", {tok}, "export: " + dir + "/tokenizer_config.json");
}

TextModel load_text_model(const std::string& path) {
  if (std::filesystem::is_directory(path)) return load_hf_bert_folder(path);
  nn::SafeTensorsFile f = nn::load_safetensors(path);
  QUENCH_CHECK(is_text_checkpoint(f.metadata), path, ": not a text model (metadata model is not 'bert')");
  TextModel m;
  m.metadata = f.metadata;
  const std::string& format = meta(f.metadata, "format", path);
  m.vocab = split_lines(meta(f.metadata, "vocab", path));
  nlohmann::json tj = parse(meta(f.metadata, "tokenizer", path), "tokenizer", path);
  m.do_lower_case = tj.value("do_lower_case", true);
  m.max_length = tj.value("max_length", int64_t{128});
  m.classes = parse(meta(f.metadata, "classes", path), "classes", path).get<std::vector<std::string>>();
  if (format == "quench-int8") {
    m.bert = quant::load_int8_bert(path);
    m.int8 = true;
  } else {
    QUENCH_CHECK(format == kTextCheckpointFormat, path, ": format '", format, "', expected '",
                 kTextCheckpointFormat, "' or 'quench-int8'");
    nn::BertConfig cfg;
    try {
      cfg = nn::BertConfig::from_json(parse(meta(f.metadata, "config", path), "config", path));
    } catch (const Error& e) {
      throw Error(path + ": " + e.what());
    }
    m.bert = std::make_shared<nn::BertForSequenceClassification>(cfg);
    nn::StateDict sd;
    for (const auto& name : f.names)
      if (name.rfind("optim.", 0) != 0) sd.insert(name, f.tensors.at(name));
    try {
      m.bert->load_state_dict(sd, /*strict=*/true);
    } catch (const Error& e) {
      throw Error(path + ": " + e.what());
    }
  }
  finish(m, path);
  return m;
}

void save_text_fp32(const std::string& path, const TextModel& m, const nn::StateDict& optim,
                    const nn::Metadata& extra) {
  nn::Metadata md = extra;
  for (const auto& kv : m.text_metadata()) md[kv.first] = kv.second;
  md["format"] = kTextCheckpointFormat;
  nn::NamedTensors ts;
  for (const auto& kv : m.bert->state_dict()) ts.emplace_back(kv.first, kv.second);
  for (const auto& kv : optim) ts.emplace_back("optim." + kv.first, kv.second);
  nn::save_safetensors(path, ts, md);
}

void save_text_int8(const std::string& path, const TextModel& m, const nn::Metadata& extra) {
  nn::Metadata md = extra;
  for (const auto& kv : m.text_metadata()) md[kv.first] = kv.second;
  quant::save_int8_bert(path, *m.bert, md);  // sets format, model and config itself
}

}  // namespace quench::cli
