#include <doctest/doctest.h>
#include <stb_image_write.h>

#include <filesystem>

#include "engine/ops.hpp"
#include "nn/data/image_folder.hpp"
#include "tests/temp_dir.hpp"

using namespace quench;
using namespace quench::nn;
using quench::testing::read_bytes;
using quench::testing::TempDir;
using quench::testing::write_bytes;

namespace {

// A 3x2 RGB image (interleaved rows) with pure colours, so both channel conversions are exact.
const std::vector<uint8_t> kRgb = {255, 0, 0,   0, 255, 0,     0, 0, 255,
                                   255, 255, 255, 0, 0, 0,   10, 20, 30};

std::vector<int32_t> as_ints(const Tensor& t) { return t.to_vector<int32_t>(); }

}  // namespace

TEST_CASE("image: bilinear resize matches PyTorch interpolate(align_corners=False)") {
  Tensor a = tensor({0, 50, 100, 150, 200, 250, 30, 60, 90}, {1, 3, 3}, kUInt8);
  // F.interpolate(a, size=(5, 4), mode="bilinear", align_corners=False), rounded to nearest.
  CHECK(as_ints(resize_bilinear(a, 5, 4)) ==
        std::vector<int32_t>{0, 31, 69, 100, 60, 91, 129, 160, 150, 181, 219, 250, 78, 102, 130, 154,
                             30, 49, 71, 90});
  Tensor b = (arange(16) * 16.0).to(kUInt8).reshape({1, 4, 4});
  CHECK(as_ints(resize_bilinear(b, 2, 3)) == std::vector<int32_t>{35, 56, 77, 163, 184, 205});
  // 1-D row [0, 255] stretched to 4: 0, 63.75, 191.25, 255.
  CHECK(as_ints(resize_bilinear(tensor({0, 255}, {1, 1, 2}, kUInt8), 1, 4)) ==
        std::vector<int32_t>{0, 64, 191, 255});
  // Same size is a copy; channels stay independent.
  Tensor two = tensor({1, 2, 3, 4, 9, 9, 9, 9}, {2, 2, 2}, kUInt8);
  CHECK(as_ints(resize_bilinear(two, 2, 2)) == as_ints(two));
  CHECK(as_ints(resize_bilinear(two, 3, 3)).back() == 9);
  CHECK_THROWS_WITH_AS(resize_bilinear(zeros({2, 2}, kUInt8), 2, 2), doctest::Contains("[C, H, W]"), Error);
  CHECK_THROWS_AS(resize_bilinear(zeros({1, 2, 2}), 2, 2), Error);
}

TEST_CASE("image: PNG / BMP / JPEG decode to [C, H, W] in grey or RGB") {
  TempDir dir;
  REQUIRE(stbi_write_png(dir.file("c.png").c_str(), 3, 2, 3, kRgb.data(), 3 * 3));
  REQUIRE(stbi_write_bmp(dir.file("c.BMP").c_str(), 3, 2, 3, kRgb.data()));
  for (const char* name : {"c.png", "c.BMP"}) {
    CAPTURE(name);
    Tensor rgb = load_image(dir.file(name), 3);
    REQUIRE(rgb.sizes() == Shape{3, 2, 3});
    CHECK(rgb.dtype() == kUInt8);
    for (int64_t y = 0; y < 2; ++y)
      for (int64_t x = 0; x < 3; ++x)
        for (int64_t c = 0; c < 3; ++c) CHECK(rgb.at({c, y, x}) == kRgb[(y * 3 + x) * 3 + c]);
    // stb's luma: (77 R + 150 G + 29 B) >> 8.
    Tensor grey = load_image(dir.file(name), 1);
    REQUIRE(grey.sizes() == Shape{1, 2, 3});
    CHECK(as_ints(grey) == std::vector<int32_t>{76, 149, 28, 255, 0, (10 * 77 + 20 * 150 + 30 * 29) >> 8});
  }
  // A grey image read as RGB repeats the plane; resizing happens on load.
  std::vector<uint8_t> g = {0, 255};
  REQUIRE(stbi_write_png(dir.file("g.png").c_str(), 2, 1, 1, g.data(), 2));
  CHECK(as_ints(load_image(dir.file("g.png"), 3)) == std::vector<int32_t>{0, 255, 0, 255, 0, 255});
  CHECK(as_ints(load_image(dir.file("g.png"), 1, 1, 4)) == std::vector<int32_t>{0, 64, 191, 255});
  // JPEG is lossy: a flat colour comes back within a few levels.
  std::vector<uint8_t> flat(16 * 16 * 3);
  for (size_t i = 0; i < flat.size(); ++i) flat[i] = std::vector<uint8_t>{200, 100, 50}[i % 3];
  REQUIRE(stbi_write_jpg(dir.file("f.jpg").c_str(), 16, 16, 3, flat.data(), 95));
  Tensor j = load_image(dir.file("f.jpg"), 3, 8, 8);
  REQUIRE(j.sizes() == Shape{3, 8, 8});
  CHECK(std::abs(j.at({0, 4, 4}) - 200) <= 4);
  CHECK(std::abs(j.at({1, 0, 7}) - 100) <= 4);
  CHECK(std::abs(j.at({2, 7, 0}) - 50) <= 4);
}

TEST_CASE("image: unreadable and corrupt files are errors naming the file and reason") {
  TempDir dir;
  REQUIRE(stbi_write_png(dir.file("ok.png").c_str(), 3, 2, 3, kRgb.data(), 9));
  const std::string png = read_bytes(dir.file("ok.png"));
  write_bytes(dir.file("garbage.png"), "this is not an image at all");
  write_bytes(dir.file("cut.png"), png.substr(0, png.size() / 2));
  write_bytes(dir.file("empty.jpg"), "");
  std::string bad_crc = png;
  bad_crc[png.size() / 2] ^= 0x55;
  write_bytes(dir.file("bad.png"), bad_crc);
  for (const char* name : {"garbage.png", "cut.png", "empty.jpg", "bad.png", "missing.png"}) {
    CAPTURE(name);
    std::string msg;
    try {
      load_image(dir.file(name), 3);
    } catch (const Error& e) {
      msg = e.what();
    }
    CAPTURE(msg);
    CHECK(msg.find(dir.file(name)) != std::string::npos);
    bool has_reason = msg.find("cannot decode: ") != std::string::npos ||
                      msg.find("cannot open") != std::string::npos || msg.find("empty") != std::string::npos;
    CHECK(has_reason);
  }
  CHECK_THROWS_WITH_AS(load_image(dir.file("ok.png"), 4), doctest::Contains("channels must be 1"), Error);
}

TEST_CASE("image: ImageFolder loads sorted classes and files, converted and resized") {
  TempDir dir;
  namespace fs = std::filesystem;
  for (const char* c : {"dog", "cat", "bird"}) fs::create_directory(dir.file(c));
  std::vector<uint8_t> white(4 * 4 * 3, 255), black(2 * 2 * 3, 0), grey(3 * 5, 128);
  REQUIRE(stbi_write_png(dir.file("dog/b.png").c_str(), 4, 4, 3, white.data(), 12));
  REQUIRE(stbi_write_bmp(dir.file("dog/a.bmp").c_str(), 2, 2, 3, black.data()));
  REQUIRE(stbi_write_png(dir.file("cat/x.PNG").c_str(), 3, 5, 1, grey.data(), 3));
  REQUIRE(stbi_write_png(dir.file("bird/y.png").c_str(), 2, 2, 3, black.data(), 6));
  write_bytes(dir.file("cat/readme.txt"), "ignored");
  write_bytes(dir.file("stray.png"), "files directly in root are ignored");

  LabeledImages ds = ImageFolder(dir.path(), 3, 4, 4);
  CHECK(ds.classes == std::vector<std::string>{"bird", "cat", "dog"});
  REQUIRE(ds.images.sizes() == Shape{4, 3, 4, 4});
  CHECK(ds.labels.dtype() == kInt32);
  CHECK(as_ints(ds.labels) == std::vector<int32_t>{0, 1, 2, 2});
  CHECK(ds.images.select(0, 1).to(kFloat32).sum().item<float>() == 128.f * 48);  // grey 3x5 -> RGB 4x4, flat
  CHECK(ds.images.select(0, 2).to(kFloat32).sum().item<float>() == 0.f);         // dog/a.bmp comes before b.png
  CHECK(ds.images.select(0, 3).to(kFloat32).sum().item<float>() == 255.f * 48);
  ImageFolderIndex index = index_image_folder(dir.path());
  CHECK(index.samples[1].first == dir.file("cat/x.PNG"));

  LabeledImages grey_ds = ImageFolder(dir.path(), 1, 2, 2);
  CHECK(grey_ds.images.sizes() == Shape{4, 1, 2, 2});

  // A corrupt image inside the folder is reported by its path.
  write_bytes(dir.file("cat/z.jpg"), "\xff\xd8\xff broken jpeg");
  CHECK_THROWS_WITH_AS(ImageFolder(dir.path(), 3, 4, 4),
                       doctest::Contains((dir.file("cat/z.jpg") + ": cannot decode").c_str()), Error);
  fs::remove(dir.file("cat/z.jpg"));
  fs::create_directory(dir.file("empty"));
  CHECK_THROWS_WITH_AS(ImageFolder(dir.path(), 3, 4, 4), doctest::Contains("has no .png/.jpg/.jpeg/.bmp image"), Error);
  CHECK_THROWS_WITH_AS(ImageFolder(dir.file("nowhere"), 3, 4, 4), doctest::Contains("is not a directory"), Error);
  CHECK_THROWS_WITH_AS(ImageFolder(dir.path(), 3, 0, 4), doctest::Contains("must be positive"), Error);
  TempDir flat_dir;
  CHECK_THROWS_WITH_AS(ImageFolder(flat_dir.path(), 3, 4, 4), doctest::Contains("has no class folders"), Error);
}
