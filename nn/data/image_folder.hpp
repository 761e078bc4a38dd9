// Images from files: decoding (stb_image: PNG, JPEG, BMP, ...), bilinear resizing, and a dataset laid
// out as root/<class>/<image> like torchvision's ImageFolder.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.hpp"
#include "nn/data/dataset.hpp"

namespace quench::nn {

// Decodes an image file to u8 [channels, H, W]. channels is 1 (grey; colour is converted with stb's
// luma 77R+150G+29B >> 8) or 3 (RGB; grey is replicated, alpha dropped). With height and width > 0
// the image is resized bilinearly to [channels, height, width]. An unreadable or corrupt file throws
// quench::Error naming the file and the decoder's reason.
Tensor load_image(const std::string& path, int64_t channels, int64_t height = 0, int64_t width = 0);

// Bilinear resize of u8 [C, H, W] to [C, height, width] with half-pixel centres, no antialiasing
// (PyTorch's interpolate(mode="bilinear", align_corners=False)), rounded to the nearest integer.
Tensor resize_bilinear(const Tensor& image, int64_t height, int64_t width);

// The files of an image folder: classes are the sorted sub-folder names of root, samples the
// (path, class index) of every *.png / *.jpg / *.jpeg / *.bmp (any case) in them, sorted by path.
// Other files are ignored. A missing root, no class folder or a class without images is an error.
struct ImageFolderIndex {
  std::vector<std::string> classes;
  std::vector<std::pair<std::string, int32_t>> samples;
};
ImageFolderIndex index_image_folder(const std::string& root);

// Loads every image of root/<class>/ into memory: images u8 [N, channels, height, width] (each image
// converted and resized as in load_image), labels i32 [N], classes from the folder names.
LabeledImages ImageFolder(const std::string& root, int64_t channels, int64_t height, int64_t width);

}  // namespace quench::nn
