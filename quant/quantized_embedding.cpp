#include "quant/quantized_embedding.hpp"

#include <algorithm>
#include <cstring>

#include "engine/ops/creation.hpp"
#include "kernels/parallel.hpp"
#include "quant/weight_codes.hpp"

namespace quench::quant {

QuantizedEmbedding::QuantizedEmbedding(int64_t num, int64_t dim, int b, int64_t group, int64_t pad)
    : Module("QuantizedEmbedding"),
      num_embeddings(num),
      embedding_dim(dim),
      padding_idx(pad),
      group_size(group),
      bits(b) {
  QUENCH_CHECK(num > 0 && dim > 0, "QuantizedEmbedding: sizes must be positive, got ", num, " x ", dim);
  QUENCH_CHECK(b >= 2 && b <= 8, "QuantizedEmbedding: codes of 2..8 bits, got ", b);
  QUENCH_CHECK(group >= 0 && group <= 65536, "QuantizedEmbedding: group_size must be 0 (per row) or in [1, 65536], got ",
               group);
  QUENCH_CHECK(pad >= -1 && pad < num, "QuantizedEmbedding: padding_idx ", pad, " must be -1 (none) or in [0, ", num,
               ")");
  groups = group ? (dim + group - 1) / group : 1;
  weight = packed() ? register_buffer("weight", zeros({num, int4_row_bytes(dim)}, kUInt8))
                    : register_buffer("weight", zeros({num, dim}, kInt8));
  weight_scale = register_buffer("weight_scale", ones({num, groups}));
}

std::string QuantizedEmbedding::extra_repr() const {
  return std::to_string(num_embeddings) + ", " + std::to_string(embedding_dim) +
         (padding_idx >= 0 ? ", padding_idx=" + std::to_string(padding_idx) : "") + ", bits=" + std::to_string(bits) +
         ", group_size=" + std::to_string(group_size);
}

void QuantizedEmbedding::set_weight_codes(const int8_t* codes) {
  if (packed())
    pack_int4_rows(codes, num_embeddings, embedding_dim, weight.data_ptr<uint8_t>());
  else
    std::memcpy(weight.data_ptr<int8_t>(), codes, static_cast<size_t>(num_embeddings * embedding_dim));
}

std::vector<int8_t> QuantizedEmbedding::weight_codes() const {
  if (packed()) return unpack_int4_rows(weight.data_ptr<uint8_t>(), num_embeddings, embedding_dim);
  const int8_t* w = weight.data_ptr<int8_t>();
  return std::vector<int8_t>(w, w + num_embeddings * embedding_dim);
}

void QuantizedEmbedding::validate(const std::string& where) const {
  const int64_t qmax = (int64_t{1} << (bits - 1)) - 1;
  if (packed())
    check_int4_rows(weight.data_ptr<uint8_t>(), num_embeddings, embedding_dim, qmax, bits, where);
  else
    check_codes(weight.data_ptr<int8_t>(), num_embeddings, embedding_dim, qmax, bits, where);
  check_weight_scales(weight_scale.data_ptr<float>(), num_embeddings, groups, where);
}

Tensor QuantizedEmbedding::forward(const Tensor& ids_in) {
  check_dtype(ids_in, kInt32, "QuantizedEmbedding", "ids");
  const Tensor ids = ids_in.contiguous();
  const int32_t* pi = ids.data_ptr<int32_t>();
  for (int64_t t = 0; t < ids.numel(); ++t)
    QUENCH_CHECK(pi[t] >= 0 && pi[t] < num_embeddings, "QuantizedEmbedding: index ", pi[t], " at position ", t,
                 " is out of range for a table of ", num_embeddings, " rows (expected 0 <= index < ",
                 num_embeddings, ")");
  const int64_t D = embedding_dim, G = groups, gs = group_size ? group_size : D;
  Shape out_shape = ids.sizes();
  out_shape.push_back(D);
  Tensor y = Tensor::empty(out_shape, kFloat32);
  float* py = y.data_ptr<float>();
  const float* ps = weight_scale.data_ptr<float>();
  const uint8_t* pw = static_cast<const uint8_t*>(weight.raw_data());
  const int64_t row_bytes = packed() ? int4_row_bytes(D) : D;
  const bool pk = packed();
  kernels::parallel_for(ids.numel(), std::max<int64_t>(1, 16384 / D), [&](int64_t b, int64_t e) {
    std::vector<int8_t> codes(pk ? D : 0);
    for (int64_t t = b; t < e; ++t) {
      const uint8_t* row = pw + pi[t] * row_bytes;
      const float* scale = ps + pi[t] * G;
      float* out = py + t * D;
      const int8_t* q = reinterpret_cast<const int8_t*>(row);
      if (pk) {
        for (int64_t d = 0; d < D; ++d) codes[d] = int4_code(row, d);
        q = codes.data();
      }
      for (int64_t g = 0; g < G; ++g) {  // one scale per run: a loop the compiler vectorizes
        const float sg = scale[g];
        for (int64_t d = g * gs, end = std::min(D, d + gs); d < end; ++d) out[d] = static_cast<float>(q[d]) * sg;
      }
    }
  });
  return y;
}

}  // namespace quench::quant
