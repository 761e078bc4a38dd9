#include "nn/data/image_folder.hpp"

#include <stb_image.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

namespace quench::nn {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& reason) {
  throw Error("load_image: " + path + ": " + reason);
}

std::vector<unsigned char> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) fail(path, std::string("cannot open: ") + std::strerror(errno));
  std::streamoff size = in.tellg();
  if (size < 0) fail(path, "cannot read its size");
  if (size > (std::streamoff{1} << 31)) fail(path, "file is over 2 GiB");
  std::vector<unsigned char> bytes(static_cast<size_t>(size));
  in.seekg(0);
  if (size && !in.read(reinterpret_cast<char*>(bytes.data()), size)) fail(path, "read failed");
  return bytes;
}

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

}  // namespace

Tensor resize_bilinear(const Tensor& image, int64_t height, int64_t width) {
  check_dtype(image, kUInt8, "resize_bilinear", "image");
  QUENCH_CHECK(image.dim() == 3, "resize_bilinear: expected an image [C, H, W], got ",
               shape_str(image.sizes()));
  QUENCH_CHECK(height > 0 && width > 0, "resize_bilinear: expected a positive size, got ", height, "x",
               width);
  const int64_t C = image.size(0), H = image.size(1), W = image.size(2);
  QUENCH_CHECK(H > 0 && W > 0, "resize_bilinear: cannot resize the empty image ", shape_str(image.sizes()));
  Tensor src_t = image.contiguous();
  if (H == height && W == width) return src_t.clone();
  // Source coordinate of each output row / column: (dst + 0.5) * scale - 0.5, clamped at 0.
  struct Tap {
    int64_t i0, i1;
    float w1;
  };
  auto taps = [](int64_t in, int64_t out) {
    std::vector<Tap> t(out);
    const float scale = static_cast<float>(in) / static_cast<float>(out);
    for (int64_t o = 0; o < out; ++o) {
      float s = std::max((static_cast<float>(o) + 0.5f) * scale - 0.5f, 0.f);
      int64_t i0 = std::min(static_cast<int64_t>(s), in - 1);
      t[o] = {i0, std::min(i0 + 1, in - 1), s - static_cast<float>(i0)};
    }
    return t;
  };
  const std::vector<Tap> ty = taps(H, height), tx = taps(W, width);
  Tensor out = Tensor::empty({C, height, width}, kUInt8);
  const uint8_t* src = src_t.data_ptr<uint8_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  for (int64_t c = 0; c < C; ++c) {
    const uint8_t* plane = src + c * H * W;
    for (int64_t y = 0; y < height; ++y) {
      const uint8_t* r0 = plane + ty[y].i0 * W;
      const uint8_t* r1 = plane + ty[y].i1 * W;
      const float wy = ty[y].w1;
      for (int64_t x = 0; x < width; ++x) {
        const Tap& t = tx[x];
        float top = r0[t.i0] + (r0[t.i1] - r0[t.i0]) * t.w1;
        float bottom = r1[t.i0] + (r1[t.i1] - r1[t.i0]) * t.w1;
        float v = top + (bottom - top) * wy;
        dst[(c * height + y) * width + x] = static_cast<uint8_t>(std::clamp(std::floor(v + 0.5f), 0.f, 255.f));
      }
    }
  }
  return out;
}

Tensor load_image(const std::string& path, int64_t channels, int64_t height, int64_t width) {
  QUENCH_CHECK(channels == 1 || channels == 3, "load_image: ", path,
               ": channels must be 1 (grey) or 3 (RGB), got ", channels);
  QUENCH_CHECK((height > 0) == (width > 0) && height >= 0, "load_image: ", path,
               ": give both height and width (> 0) or neither, got ", height, "x", width);
  std::vector<unsigned char> bytes = read_file(path);
  if (bytes.empty()) fail(path, "the file is empty");
  int w = 0, h = 0, n = 0;
  std::unique_ptr<unsigned char, void (*)(void*)> pixels(
      stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &n,
                            static_cast<int>(channels)),
      stbi_image_free);
  if (!pixels) {
    const char* why = stbi_failure_reason();
    fail(path, std::string("cannot decode: ") + (why ? why : "unknown reason"));
  }
  // stb gives interleaved H x W x C; the model wants planes C x H x W.
  Tensor img = Tensor::empty({channels, h, w}, kUInt8);
  uint8_t* dst = img.data_ptr<uint8_t>();
  const int64_t hw = static_cast<int64_t>(h) * w;
  for (int64_t i = 0; i < hw; ++i)
    for (int64_t c = 0; c < channels; ++c) dst[c * hw + i] = pixels.get()[i * channels + c];
  if (height > 0 && (height != h || width != w)) return resize_bilinear(img, height, width);
  return img;
}

ImageFolderIndex index_image_folder(const std::string& root) {
  std::error_code ec;
  QUENCH_CHECK(fs::is_directory(root, ec), "ImageFolder: ", root, " is not a directory");
  ImageFolderIndex index;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec))
    if (e.is_directory()) index.classes.push_back(e.path().filename().string());
  QUENCH_CHECK(!ec, "ImageFolder: cannot list ", root, ": ", ec.message());
  std::sort(index.classes.begin(), index.classes.end());
  QUENCH_CHECK(!index.classes.empty(), "ImageFolder: ", root,
               " has no class folders (expected root/<class>/<image>)");
  for (size_t c = 0; c < index.classes.size(); ++c) {
    const fs::path dir = fs::path(root) / index.classes[c];
    std::vector<std::string> files;
    for (const fs::directory_entry& e : fs::directory_iterator(dir, ec))
      if (!e.is_directory() && is_image_file(e.path())) files.push_back(e.path().string());
    QUENCH_CHECK(!ec, "ImageFolder: cannot list ", dir.string(), ": ", ec.message());
    QUENCH_CHECK(!files.empty(), "ImageFolder: class folder ", dir.string(),
                 " has no .png/.jpg/.jpeg/.bmp image");
    std::sort(files.begin(), files.end());
    for (std::string& f : files) index.samples.emplace_back(std::move(f), static_cast<int32_t>(c));
  }
  return index;
}

LabeledImages ImageFolder(const std::string& root, int64_t channels, int64_t height, int64_t width) {
  QUENCH_CHECK(height > 0 && width > 0, "ImageFolder: ", root,
               ": height and width must be positive (every image is resized to them), got ", height,
               "x", width);
  ImageFolderIndex index = index_image_folder(root);
  const int64_t n = static_cast<int64_t>(index.samples.size());
  LabeledImages out;
  out.images = Tensor::empty({n, channels, height, width}, kUInt8);
  out.labels = Tensor::empty({n}, kInt32);
  out.classes = index.classes;
  uint8_t* images = out.images.data_ptr<uint8_t>();
  int32_t* labels = out.labels.data_ptr<int32_t>();
  const int64_t per_image = channels * height * width;
  for (int64_t i = 0; i < n; ++i) {
    Tensor img = load_image(index.samples[i].first, channels, height, width);
    std::memcpy(images + i * per_image, img.data_ptr<uint8_t>(), per_image);
    labels[i] = index.samples[i].second;
  }
  return out;
}

}  // namespace quench::nn
