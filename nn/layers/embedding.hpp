// Embedding: rows of a table picked by integer ids (torch.nn.Embedding).
//   ids int32 [...] -> [..., embedding_dim];  weight [num_embeddings, embedding_dim] ~ N(0, 1).
//   padding_idx (-1: none): that row starts at zero and gets no gradient.
#pragma once
#include "engine/generator.hpp"
#include "nn/module.hpp"

namespace quench::nn {

class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim);
  Embedding(int64_t num_embeddings, int64_t embedding_dim, Generator& gen, int64_t padding_idx = -1);
  std::string extra_repr() const override;
  void zero_padding_row();  // after a re-initialization of weight, as torch's reset_parameters

  int64_t num_embeddings, embedding_dim, padding_idx;
  Tensor weight;

 protected:
  Tensor forward(const Tensor& ids) override;
};

}  // namespace quench::nn
