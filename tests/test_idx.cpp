#include <doctest/doctest.h>
#include <zlib.h>

#include <cmath>
#include <filesystem>

#include "engine/ops.hpp"
#include "nn/data/idx.hpp"
#include "tests/temp_dir.hpp"

using namespace quench;
using namespace quench::nn;
using quench::testing::read_bytes;
using quench::testing::TempDir;
using quench::testing::write_bytes;

namespace {

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// IDX bytes: magic, sizes, then `data`.
std::string idx_bytes(uint32_t magic, const std::vector<uint32_t>& dims, const std::string& data) {
  std::string out = be32(magic);
  for (uint32_t d : dims) out += be32(d);
  return out + data;
}

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 37 + 11) % 256);
  return s;
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

std::string error_of(const std::string& path, uint32_t magic = 0) {
  try {
    read_idx(path, magic);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

void check_rejected(const std::string& path, const std::string& reason, uint32_t magic = 0) {
  std::string msg = error_of(path, magic);
  CAPTURE(msg);
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find(reason) != std::string::npos);
}

}  // namespace

TEST_CASE("idx: plain and gzip files read to the declared u8 shape") {
  TempDir dir;
  std::string data = pattern(2 * 3 * 4);
  std::string bytes = idx_bytes(kIdxImagesMagic, {2, 3, 4}, data);
  write_bytes(dir.file("plain"), bytes);
  write_gz(dir.file("z.gz"), bytes);
  for (std::string name : {"plain", "z.gz"}) {
    CAPTURE(name);
    Tensor t = read_idx(dir.file(name), kIdxImagesMagic);
    CHECK(t.dtype() == kUInt8);
    REQUIRE(t.sizes() == Shape{2, 3, 4});
    CHECK(t.at({1, 2, 3}) == static_cast<uint8_t>(data[23]));
    CHECK(std::string(reinterpret_cast<const char*>(t.data_ptr<uint8_t>()), 24) == data);
  }
  write_gz(dir.file("labels.gz"), idx_bytes(kIdxLabelsMagic, {5}, std::string("\0\1\2\3\4", 5)));
  CHECK(read_idx(dir.file("labels.gz")).to_vector<int32_t>() == std::vector<int32_t>{0, 1, 2, 3, 4});
  write_gz(dir.file("empty.gz"), idx_bytes(kIdxLabelsMagic, {0}, ""));
  CHECK(read_idx(dir.file("empty.gz")).sizes() == Shape{0});
}

TEST_CASE("idx: corrupt files are rejected naming the file and reason") {
  TempDir dir;
  const std::string good = idx_bytes(kIdxImagesMagic, {2, 3, 4}, pattern(24));
  auto put = [&](const std::string& name, const std::string& bytes) {
    write_bytes(dir.file(name), bytes);
    return dir.file(name);
  };
  check_rejected(put("labels_as_images", idx_bytes(kIdxLabelsMagic, {3}, "abc")),
                 "bad magic 2049, expected 2051 (images)", kIdxImagesMagic);
  check_rejected(put("not_idx", "PK\3\4" + pattern(40)), "not an IDX file");
  check_rejected(put("float_type", idx_bytes(0x00000D01, {1}, "abcd")), "unsupported IDX element type 0x0d");
  check_rejected(put("zero_dims", idx_bytes(0x00000800, {}, "")), "0 dimensions");
  check_rejected(put("tiny", "\0\0"), "shorter than the 4-byte magic");
  check_rejected(put("cut_dims", good.substr(0, 10)), "ends inside them");
  check_rejected(put("cut_data", good.substr(0, good.size() - 5)),
                 "shape [2, 3, 4] needs 24 data bytes but the file holds 19");
  check_rejected(put("extra", good + "x"), "extra bytes after the 24 data bytes");
  check_rejected(put("huge", idx_bytes(kIdxImagesMagic, {60000, 60000, 60000}, "")), "over the 4 GiB limit");
  check_rejected(dir.file("does_not_exist.gz"), "cannot open");

  // gzip damage: a compressed copy of a larger file, cut or altered.
  const std::string big = idx_bytes(kIdxImagesMagic, {10, 28, 28}, pattern(10 * 28 * 28));
  write_gz(dir.file("ok.gz"), big);
  const std::string gz = read_bytes(dir.file("ok.gz"));
  REQUIRE(gz.size() > 40);
  CHECK(read_idx(dir.file("ok.gz")).sizes() == Shape{10, 28, 28});
  check_rejected(put("cut_stream.gz", gz.substr(0, gz.size() / 2)), "truncated");
  check_rejected(put("cut_trailer.gz", gz.substr(0, gz.size() - 4)), "truncated gzip stream");
  std::string bad_crc = gz;
  bad_crc[bad_crc.size() - 6] ^= 0x5a;  // inside the CRC-32 of the trailer
  check_rejected(put("bad_crc.gz", bad_crc), "bad gzip data: incorrect data check");
  std::string bad_block = gz;
  bad_block[10] = 0x07;  // first deflate block: final, type 3 (reserved)
  check_rejected(put("bad_block.gz", bad_block), "bad gzip data: invalid block type");
}

TEST_CASE("idx: the MNIST layout checks counts and labels across the two files") {
  TempDir dir;
  write_gz(dir.file("train-images-idx3-ubyte.gz"), idx_bytes(kIdxImagesMagic, {3, 2, 2}, pattern(12)));
  write_gz(dir.file("train-labels-idx1-ubyte.gz"), idx_bytes(kIdxLabelsMagic, {3}, std::string("\0\11\4", 3)));
  LabeledImages ds = MNIST(dir.path(), true);
  CHECK(ds.size() == 3);
  CHECK(ds.images.sizes() == Shape{3, 2, 2});
  CHECK(ds.labels.dtype() == kInt32);
  CHECK(ds.labels.to_vector<int32_t>() == std::vector<int32_t>{0, 9, 4});
  CHECK(ds.classes.size() == 10);

  write_gz(dir.file("t10k-images-idx3-ubyte.gz"), idx_bytes(kIdxImagesMagic, {3, 2, 2}, pattern(12)));
  write_gz(dir.file("t10k-labels-idx1-ubyte.gz"), idx_bytes(kIdxLabelsMagic, {2}, std::string("\0\1", 2)));
  const std::string expected = "counts disagree: " + dir.path() + "/t10k-images-idx3-ubyte.gz has 3 images but " +
                               dir.path() + "/t10k-labels-idx1-ubyte.gz has 2 labels";
  CHECK_THROWS_WITH_AS(MNIST(dir.path() + "/", false), doctest::Contains(expected.c_str()), Error);
  write_gz(dir.file("t10k-labels-idx1-ubyte.gz"), idx_bytes(kIdxLabelsMagic, {3}, std::string("\0\1\12", 3)));
  CHECK_THROWS_WITH_AS(FashionMNIST(dir.path(), false),
                       doctest::Contains("label 10 at index 2 is outside the 10 classes"), Error);
  CHECK_THROWS_WITH_AS(FashionMNIST(dir.file("nowhere"), true), doctest::Contains("cannot open"), Error);
}

TEST_CASE("idx: the installed Fashion-MNIST reads with its known statistics") {
  if (!std::filesystem::exists(std::string(kFashionMnistRoot) + "train-images-idx3-ubyte.gz")) {
    MESSAGE("Fashion-MNIST is not installed at ", kFashionMnistRoot, "; skipped");
    return;
  }
  for (bool train : {true, false}) {
    CAPTURE(train);
    LabeledImages ds = FashionMNIST(kFashionMnistRoot, train);
    const int64_t n = train ? 60000 : 10000;
    REQUIRE(ds.images.sizes() == Shape{n, 28, 28});
    REQUIRE(ds.labels.sizes() == Shape{n});
    CHECK(ds.classes[9] == "Ankle boot");
    // Both splits are balanced: n / 10 images of every class.
    std::vector<int64_t> per_class(10, 0);
    int64_t out_of_range = 0;
    for (int32_t l : ds.labels.to_vector<int32_t>()) {
      if (l >= 0 && l < 10) ++per_class[l];
      else ++out_of_range;
    }
    CHECK(out_of_range == 0);
    CHECK(per_class == std::vector<int64_t>(10, n / 10));
    if (train) {
      // The usual normalization constants: mean 0.2860, std 0.3530 of x/255 over the train set.
      const uint8_t* p = ds.images.data_ptr<uint8_t>();
      double sum = 0, sum2 = 0;
      for (int64_t i = 0, m = ds.images.numel(); i < m; ++i) {
        double x = p[i] / 255.0;
        sum += x;
        sum2 += x * x;
      }
      double mean = sum / ds.images.numel();
      double stdev = std::sqrt(sum2 / ds.images.numel() - mean * mean);
      CHECK(mean == doctest::Approx(0.2860).epsilon(0.0005 / 0.2860));
      CHECK(stdev == doctest::Approx(0.3530).epsilon(0.0005 / 0.3530));
      CHECK(ds.labels.to_vector<int32_t>()[0] == 9);  // the first training image is an ankle boot
    }
  }
}
