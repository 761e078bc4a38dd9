#include "nn/layers/embedding.hpp"

#include <algorithm>

#include "engine/ops.hpp"
#include "nn/init.hpp"

namespace quench::nn {

Embedding::Embedding(int64_t num, int64_t dim) : Embedding(num, dim, default_generator()) {}

Embedding::Embedding(int64_t num, int64_t dim, Generator& gen, int64_t pad)
    : Module("Embedding"), num_embeddings(num), embedding_dim(dim), padding_idx(pad) {
  QUENCH_CHECK(num > 0 && dim > 0, "Embedding: sizes must be positive, got ", num, " x ", dim);
  QUENCH_CHECK(pad >= -1 && pad < num, "Embedding: padding_idx ", pad, " must be -1 (none) or in [0, ", num, ")");
  weight = register_parameter("weight", empty({num, dim}));
  init::normal_(weight, 0.0, 1.0, gen);
  if (pad >= 0) zero_padding_row();
}

void Embedding::zero_padding_row() {
  if (padding_idx < 0) return;
  float* row = weight.data_ptr<float>() + padding_idx * embedding_dim;
  std::fill(row, row + embedding_dim, 0.0f);
}

std::string Embedding::extra_repr() const {
  return std::to_string(num_embeddings) + ", " + std::to_string(embedding_dim) +
         (padding_idx >= 0 ? ", padding_idx=" + std::to_string(padding_idx) : "");
}

Tensor Embedding::forward(const Tensor& ids) { return embedding(weight, ids, padding_idx); }

}  // namespace quench::nn
