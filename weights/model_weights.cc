#include "weights/model_weights.h"

namespace zerorl {

std::vector<WeightTensor> HostWeightTensors(model::Model& m) {
  std::vector<WeightTensor> out;
  for (const model::TensorRef& t : m.Parameters()) out.push_back({t.name, t.shape, t.data, t.size});
  return out;
}

absl::StatusOr<std::vector<zerorl::v1::WeightChunk>> WeightChunksOf(model::Model& m, int64_t version,
                                                                   int64_t chunk_bytes) {
  ChunkOptions o;
  o.version = version;
  o.config_json = m.config().ToJson();
  o.chunk_bytes = chunk_bytes;
  std::vector<zerorl::v1::WeightChunk> out;
  absl::Status s = ForEachWeightChunk(HostWeightTensors(m), o, [&](const zerorl::v1::WeightChunk& c) {
    out.push_back(c);
    return true;
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace zerorl
