#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/ops.hpp"
#include "nn/io/safetensors.hpp"
#include "tests/temp_dir.hpp"

using namespace quench;
using namespace quench::nn;
using quench::testing::read_bytes;
using quench::testing::TempDir;
using quench::testing::write_bytes;

namespace {

// A safetensors file from a header text and raw data (header padded to 8 unless told otherwise).
std::string st_bytes(std::string header, const std::string& data, bool pad = true) {
  if (pad) header.append((8 - header.size() % 8) % 8, ' ');
  uint64_t n = header.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + header + data;
}

std::string error_of(const std::string& path) {
  try {
    load_safetensors(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Writes `bytes` as a file and checks that loading it fails naming the file and `reason`.
void check_rejected(const TempDir& dir, const std::string& name, const std::string& bytes,
                    const std::string& reason) {
  CAPTURE(name);
  std::string path = dir.file(name + ".safetensors");
  write_bytes(path, bytes);
  std::string msg = error_of(path);
  CAPTURE(msg);
  CHECK(msg.find(path) != std::string::npos);
  CHECK(msg.find(reason) != std::string::npos);
}

bool same_tensor(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.sizes() == b.sizes() &&
         a.to_vector<double>() == b.to_vector<double>();
}

size_t files_in(const std::string& dir) {
  size_t n = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) n += e.is_regular_file();
  return n;
}

}  // namespace

TEST_CASE("safetensors: every dtype, shapes and metadata round-trip exactly") {
  TempDir dir;
  Generator gen(7);
  Tensor f = randn({3, 4}, gen);
  Tensor i32 = randint(-100000, 100000, {5}, gen);
  Tensor i8 = randint(-128, 128, {2, 2, 3}, gen, kInt8);
  Tensor u8 = randint(0, 256, {7}, gen, kUInt8);
  Tensor scalar = scalar_tensor(2.5);
  Tensor empty = zeros({0, 3});
  Tensor strided = randn({4, 3}, gen).t();  // non-contiguous input is written in row-major order
  NamedTensors in = {{"w.f32", f}, {"b.i32", i32}, {"z.i8", i8}, {"a.u8", u8},
                     {"scalar", scalar}, {"empty", empty}, {"strided", strided}};
  Metadata meta = {{"format", "pt"}, {"epoch", "3"}, {"note", "quoted \"text\" and \xc3\xa9"}};
  std::string path = dir.file("model.safetensors");
  save_safetensors(path, in, meta);

  SafeTensorsFile file = load_safetensors(path);
  CHECK(file.path == path);
  CHECK(file.metadata == meta);
  REQUIRE(file.tensors.size() == in.size());
  for (auto& entry : in) {
    const std::string& name = entry.first;
    CAPTURE(name);
    REQUIRE(file.contains(name));
    CHECK(same_tensor(file.at(name), entry.second));
  }
  // Data follows sorted key order, so file order is the sorted names.
  std::vector<std::string> sorted = {"a.u8", "b.i32", "empty", "scalar", "strided", "w.f32", "z.i8"};
  CHECK(file.names == sorted);
  CHECK_THROWS_WITH_AS(file.at("nope"), doctest::Contains("has no tensor 'nope'"), Error);

  // The bytes on disk follow the format: padded header, sorted keys, offsets tiling the data.
  std::string bytes = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  CHECK(n % 8 == 0);
  std::string header = bytes.substr(8, n);
  auto j = nlohmann::json::parse(header);
  CHECK(j["__metadata__"]["epoch"] == "3");
  CHECK(j["w.f32"]["dtype"] == "F32");
  CHECK(j["z.i8"]["dtype"] == "I8");
  CHECK(j["a.u8"]["dtype"] == "U8");
  CHECK(j["b.i32"]["dtype"] == "I32");
  CHECK(j["strided"]["shape"] == nlohmann::json::array({3, 4}));
  CHECK(j["scalar"]["shape"] == nlohmann::json::array());
  uint64_t cursor = 0;
  for (const std::string& name : sorted) {
    CHECK(j[name]["data_offsets"][0].get<uint64_t>() == cursor);
    cursor = j[name]["data_offsets"][1].get<uint64_t>();
  }
  CHECK(8 + n + cursor == bytes.size());
  // The key order inside the JSON text is sorted too.
  CHECK(header.find("\"a.u8\"") < header.find("\"b.i32\""));
  CHECK(header.find("\"w.f32\"") < header.find("\"z.i8\""));

  // An ordered map saves the same file; named_tensors() lists file order.
  std::map<std::string, Tensor> as_map(in.begin(), in.end());
  std::string path2 = dir.file("map.safetensors");
  save_safetensors(path2, as_map, meta);
  CHECK(read_bytes(path2) == bytes);
  CHECK(file.named_tensors().front().first == "a.u8");
}

TEST_CASE("safetensors: save rejects bad names before writing") {
  TempDir dir;
  std::string path = dir.file("x.safetensors");
  CHECK_THROWS_WITH_AS(save_safetensors(path, NamedTensors{{"a", ones({1})}, {"a", ones({2})}}),
                       doctest::Contains("'a' appears more than once"), Error);
  CHECK_THROWS_WITH_AS(save_safetensors(path, NamedTensors{{"__metadata__", ones({1})}}),
                       doctest::Contains("reserved"), Error);
  CHECK_THROWS_WITH_AS(save_safetensors(path, NamedTensors{{"", ones({1})}}),
                       doctest::Contains("empty name"), Error);
  CHECK_THROWS_WITH_AS(save_safetensors(path, NamedTensors{{"u", Tensor()}}),
                       doctest::Contains("'u' is undefined"), Error);
  CHECK(files_in(dir.path()) == 0);
}

TEST_CASE("safetensors: a failing save leaves the old file intact and no temporary behind") {
  TempDir dir;
  std::string path = dir.file("ckpt.safetensors");
  save_safetensors(path, NamedTensors{{"old", arange(4)}}, {{"v", "1"}});
  const std::string old_bytes = read_bytes(path);

  SUBCASE("invalid input") {
    CHECK_THROWS_AS(save_safetensors(path, NamedTensors{{"a", ones({1})}, {"a", ones({1})}}), Error);
  }
  SUBCASE("the disk refuses the data half-way (file size limit)") {
    // A real write error in the middle of the data: the soft RLIMIT_FSIZE makes write() fail with
    // EFBIG once the temporary file reaches 4 KiB (SIGXFSZ ignored so the process survives).
    struct rlimit old_limit;
    REQUIRE(getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
    struct sigaction ignore{}, old_action{};
    ignore.sa_handler = SIG_IGN;
    sigaction(SIGXFSZ, &ignore, &old_action);
    struct rlimit small = old_limit;
    small.rlim_cur = 4096;
    REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
    std::string msg;
    try {
      save_safetensors(path, NamedTensors{{"big", zeros({64, 1024})}});
    } catch (const Error& e) {
      msg = e.what();
    }
    setrlimit(RLIMIT_FSIZE, &old_limit);
    sigaction(SIGXFSZ, &old_action, nullptr);
    CAPTURE(msg);
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find("write failed") != std::string::npos);
  }
  SUBCASE("the target cannot be replaced (it is a directory)") {
    std::string target = dir.file("adir");
    std::filesystem::create_directory(target);
    CHECK_THROWS_WITH_AS(save_safetensors(target, NamedTensors{{"a", ones({1})}}),
                         doctest::Contains("cannot rename"), Error);
    std::filesystem::remove(target);
  }
  SUBCASE("the directory does not exist") {
    CHECK_THROWS_WITH_AS(save_safetensors(dir.file("no/such/dir.safetensors"),
                                          NamedTensors{{"a", ones({1})}}),
                         doctest::Contains("cannot create a temporary file"), Error);
  }
  CHECK(read_bytes(path) == old_bytes);
  CHECK(files_in(dir.path()) == 1);
  CHECK(load_safetensors(path).metadata.at("v") == "1");
}

TEST_CASE("safetensors: corrupt and hostile files are rejected naming the file and reason") {
  TempDir dir;
  const std::string f8(8, '\0'), f12(12, '\0');
  const std::string a4 = R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
  check_rejected(dir, "short", std::string(5, '\0'), "shorter than the 8-byte header length");
  check_rejected(dir, "empty_file", "", "shorter than the 8-byte header length");
  {
    std::string b = st_bytes("{}", "");
    uint64_t n = 4096;
    std::memcpy(b.data(), &n, 8);
    check_rejected(dir, "len_past_end", b, "runs past the end of the file");
    n = 200'000'000;
    std::memcpy(b.data(), &n, 8);
    check_rejected(dir, "len_huge", b, "over the 100 MB limit");
    n = ~uint64_t{0};
    std::memcpy(b.data(), &n, 8);
    check_rejected(dir, "len_max", b, "over the 100 MB limit");
  }
  check_rejected(dir, "bad_json", st_bytes(R"({"a":{"dtype":)", f8), "not valid JSON");
  check_rejected(dir, "not_utf8", st_bytes("{\"\xff\":1}", ""), "not valid JSON");
  check_rejected(dir, "array", st_bytes("[1,2]", ""), "not a JSON object");
  check_rejected(dir, "entry_number", st_bytes(R"({"a":5})", ""), "tensor 'a' is not an object");
  check_rejected(dir, "entry_no_dtype", st_bytes(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", f8),
                 "tensor 'a' has no \"dtype\"");
  check_rejected(dir, "unknown_dtype",
                 st_bytes(R"({"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})", "x"),
                 "unsupported dtype \"F8_E4M3\"");
  check_rejected(dir, "dtype_not_string",
                 st_bytes(R"({"a":{"dtype":3,"shape":[1],"data_offsets":[0,4]}})", f8.substr(4)),
                 "non-string dtype");
  check_rejected(dir, "size_mismatch",
                 st_bytes(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", f8),
                 "of shape [3] and dtype F32 needs 12 bytes but its data_offsets span 8");
  check_rejected(dir, "dims_overflow",
                 st_bytes(R"({"a":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,8]}})", f8),
                 "needs more than 2^64 bytes");
  check_rejected(dir, "negative_dim",
                 st_bytes(R"({"a":{"dtype":"F32","shape":[-1,2],"data_offsets":[0,8]}})", f8),
                 "dimension is negative (-1)");
  check_rejected(dir, "float_dim",
                 st_bytes(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", f8),
                 "dimension is not an integer (2.5)");
  check_rejected(dir, "offsets_out_of_range",
                 st_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", f8),
                 "outside the data section of 8 bytes");
  check_rejected(dir, "offsets_reversed",
                 st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", f8),
                 "outside the data section");
  check_rejected(dir, "offsets_three",
                 st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", f8),
                 "expected [begin, end]");
  check_rejected(dir, "overlap",
                 st_bytes("{" + a4 + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[2,10]}})", f12),
                 "tensor 'b' at bytes [2, 10) overlaps tensor 'a'");
  check_rejected(dir, "gap",
                 st_bytes("{" + a4 + R"(,"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", f12),
                 "gap of 4 bytes between tensor 'a' and tensor 'b'");
  check_rejected(dir, "leading_gap",
                 st_bytes(R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", f8),
                 "gap of 4 bytes between the start of the data section and tensor 'b'");
  check_rejected(dir, "trailing_bytes", st_bytes("{" + a4 + "}", f8),
                 "4 bytes at the end of the data section belong to no tensor");
  check_rejected(dir, "duplicate", st_bytes("{" + a4 + "," + a4 + "}", f8), "names 'a' more than once");
  check_rejected(dir, "metadata_number", st_bytes(R"({"__metadata__":{"epoch":3}})", ""),
                 "__metadata__ entry 'epoch' is not a string but 3");
  check_rejected(dir, "metadata_array", st_bytes(R"({"__metadata__":["x"]})", ""),
                 "__metadata__ is not an object");
  check_rejected(dir, "i64_out_of_range",
                 st_bytes(R"({"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})",
                          std::string("\x00\x00\x00\x00\x01\x00\x00\x00", 8)),
                 "tensor 'a' of dtype I64 holds values outside int32");
  // Deep nesting must not crash the parser (it is iterative) and is then rejected as a bad entry.
  check_rejected(dir, "deep", st_bytes("{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}", ""),
                 "tensor 'a' is not an object");
  CHECK(error_of(dir.file("missing.safetensors")).find("cannot open") != std::string::npos);
  CHECK(error_of(dir.path()).find("not a regular file") != std::string::npos);

  // The in-memory parser applies the same checks.
  std::string good = st_bytes("{" + a4 + "}", std::string(4, '\0'));
  CHECK(parse_safetensors(good.data(), good.size(), "mem").at("a").sizes() == Shape{1});
  CHECK_THROWS_WITH_AS(parse_safetensors(good.data(), 6, "mem"), doctest::Contains("mem: file is 6 bytes"), Error);
  // An unpadded header is still read (other writers may not pad).
  std::string unpadded = st_bytes("{" + a4 + "}", std::string(4, '\0'), false);
  CHECK(parse_safetensors(unpadded.data(), unpadded.size(), "mem").names == std::vector<std::string>{"a"});
}

TEST_CASE("safetensors: a file in PyTorch's safetensors layout is read (golden)") {
  // Written by tests/golden/make_torch_safetensors.py (stdlib + torch, the Rust serializer's layout:
  // data sorted by dtype then name, __metadata__ first, compact JSON, 8-byte padding).
  SafeTensorsFile f = load_safetensors(QUENCH_SOURCE_DIR "/tests/golden/torch_layout.safetensors");
  CHECK(f.metadata == Metadata{{"format", "pt"}, {"note", "golden"}});
  std::vector<std::string> order = {"bn.num_batches_tracked", "embed.position_ids", "scale64",
                                    "encoder.weight", "q.empty", "q.index", "embed.bf16",
                                    "encoder.bias_half", "q.weight", "q.zero_point", "mask"};
  CHECK(f.names == order);
  Tensor w = f.at("encoder.weight");
  REQUIRE(w.sizes() == Shape{2, 3});
  CHECK(w.dtype() == kFloat32);
  for (int i = 0; i < 6; ++i) CHECK(w.to_vector<float>()[i] == i / 4.f - 0.5f);
  CHECK(f.at("encoder.bias_half").dtype() == kFloat32);
  CHECK(f.at("encoder.bias_half").to_vector<float>() ==
        std::vector<float>{1.5f, -2.f, 65504.f, std::ldexp(1.f, -24)});
  CHECK(f.at("embed.bf16").to_vector<float>() == std::vector<float>{1.f, -3.140625f, 256.f});
  CHECK(f.at("embed.position_ids").dtype() == kInt32);
  CHECK(f.at("embed.position_ids").sizes() == Shape{1, 5});
  CHECK(f.at("embed.position_ids").to_vector<int32_t>() == std::vector<int32_t>{0, 1, 2, 3, 4});
  CHECK(f.at("bn.num_batches_tracked").sizes() == Shape{});
  CHECK(f.at("bn.num_batches_tracked").item<int32_t>() == 7);
  CHECK(f.at("q.weight").dtype() == kInt8);
  CHECK(f.at("q.weight").to_vector<int32_t>() == std::vector<int32_t>{-128, 0, 127});
  CHECK(f.at("q.zero_point").dtype() == kUInt8);
  CHECK(f.at("q.zero_point").to_vector<int32_t>() == std::vector<int32_t>{0, 255});
  CHECK(f.at("q.index").to_vector<int32_t>() == std::vector<int32_t>{1, -2, 3, 2147483647});
  CHECK(f.at("q.empty").sizes() == Shape{0, 3});
  CHECK(f.at("mask").to_vector<int32_t>() == std::vector<int32_t>{1, 0, 1});
  CHECK(f.at("scale64").to_vector<float>() == std::vector<float>{0.1f, -2.5f});
}

TEST_CASE("safetensors: strict state-dict check names every missing, unexpected and wrong key") {
  std::map<std::string, TensorSpec> expected = {{"a", {{2, 3}, kFloat32}},
                                                {"b", {{4}, kFloat32}},
                                                {"c", {{1}, kFloat32}},
                                                {"e", {{2}, kInt8}},
                                                {"g", {{5}, kFloat32}}};
  std::map<std::string, Tensor> found = {{"a", zeros({3, 2})}, {"b", zeros({4})},
                                         {"d", zeros({1})}, {"e", zeros({2})}, {"f", zeros({1})}};
  std::string msg;
  try {
    check_state_dict(expected, found, "teacher.safetensors");
  } catch (const Error& e) {
    msg = e.what();
  }
  CAPTURE(msg);
  CHECK(msg.find("teacher.safetensors: state dict does not match") == 0);
  CHECK(msg.find("missing keys (2): c, g") != std::string::npos);
  CHECK(msg.find("unexpected keys (2): d, f") != std::string::npos);
  CHECK(msg.find("a (expected [2, 3] float32, got [3, 2] float32)") != std::string::npos);
  CHECK(msg.find("e (expected [2] int8, got [2] float32)") != std::string::npos);
  CHECK(msg.find("b (") == std::string::npos);
  std::map<std::string, Tensor> good = {{"a", zeros({2, 3})}, {"b", zeros({4})}, {"c", zeros({1})},
                                        {"e", zeros({2}, kInt8)}, {"g", zeros({5})}};
  CHECK_NOTHROW(check_state_dict(expected, good, "x"));
  // Expected shapes can come from tensors, e.g. a model's own state dict.
  CHECK_NOTHROW(check_state_dict(good, good, "x"));
  std::map<std::string, Tensor> model = {{"a", zeros({2, 3})}, {"h", zeros({1})}};
  CHECK_THROWS_WITH_AS(check_state_dict(model, good, "ckpt"), doctest::Contains("missing keys (1): h"), Error);
}
