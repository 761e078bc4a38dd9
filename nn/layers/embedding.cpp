#include "nn/layers/embedding.hpp"

#include "engine/ops.hpp"
#include "nn/init.hpp"

namespace quench::nn {

Embedding::Embedding(int64_t num, int64_t dim) : Embedding(num, dim, default_generator()) {}

Embedding::Embedding(int64_t num, int64_t dim, Generator& gen)
    : Module("Embedding"), num_embeddings(num), embedding_dim(dim) {
  QUENCH_CHECK(num > 0 && dim > 0, "Embedding: sizes must be positive, got ", num, " x ", dim);
  weight = register_parameter("weight", empty({num, dim}));
  init::normal_(weight, 0.0, 1.0, gen);
}

std::string Embedding::extra_repr() const {
  return std::to_string(num_embeddings) + ", " + std::to_string(embedding_dim);
}

Tensor Embedding::forward(const Tensor& ids) { return embedding(weight, ids); }

}  // namespace quench::nn
