// IDX files (the MNIST / Fashion-MNIST format) and the datasets stored in them.
//
// IDX: big-endian u32 magic (0x0000 TTDD: type TT, DD dimensions), DD big-endian u32 sizes, then the
// elements row-major. Images are magic 2051 (u8 [N, rows, cols]), labels 2049 (u8 [N]). Files may be
// gzip-compressed or plain; both are read through zlib.
#pragma once
#include <cstdint>
#include <string>

#include "engine/tensor.hpp"
#include "nn/data/dataset.hpp"

namespace quench::nn {

inline constexpr uint32_t kIdxImagesMagic = 2051;
inline constexpr uint32_t kIdxLabelsMagic = 2049;
inline constexpr const char* kFashionMnistRoot = "/usr/share/datasets/fashion-mnist/";

// Reads an unsigned-byte IDX file into a u8 tensor of the dimensions it declares. With
// `expected_magic` != 0 the magic must equal it. Bad magic, unsupported element type, truncated data,
// extra bytes, corrupt gzip and unreadable files throw quench::Error naming the file and reason.
Tensor read_idx(const std::string& path, uint32_t expected_magic = 0);

// A split of a dataset in the MNIST layout: root/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz.
// images u8 [N, rows, cols], labels i32 [N] checked against the number of classes.
LabeledImages load_mnist_layout(const std::string& root, bool train,
                                const std::vector<std::string>& classes);

// Fashion-MNIST: 60000 train / 10000 test images, 28x28 grey, 10 classes ("T-shirt/top" ...).
LabeledImages FashionMNIST(const std::string& root = kFashionMnistRoot, bool train = true);
// MNIST: the same layout, classes "0".."9".
LabeledImages MNIST(const std::string& root, bool train = true);

}  // namespace quench::nn
