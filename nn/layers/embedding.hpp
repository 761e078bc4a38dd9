// Embedding: rows of a table picked by integer ids (torch.nn.Embedding).
//   ids int32 [...] -> [..., embedding_dim];  weight [num_embeddings, embedding_dim] ~ N(0, 1).
#pragma once
#include "engine/generator.hpp"
#include "nn/module.hpp"

namespace quench::nn {

class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim);
  Embedding(int64_t num_embeddings, int64_t embedding_dim, Generator& gen);
  std::string extra_repr() const override;

  int64_t num_embeddings, embedding_dim;
  Tensor weight;

 protected:
  Tensor forward(const Tensor& ids) override;
};

}  // namespace quench::nn
