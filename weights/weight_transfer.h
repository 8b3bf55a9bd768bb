// The weight-transfer protocol shared by UpdateWeights (learner -> rollout push)
// and FetchWeights (rollout pull): a model's tensors, in order, each split into
// WeightChunk messages of at most `chunk_bytes` data bytes, with the CRC-32C of
// the tensor's wire bytes on its last chunk (proto/zerorl/v1/rollout.proto).
//
// Sender: ForEachWeightChunk walks the tensors and hands each chunk to a
// callback (a gRPC stream Write); ForEachWireWeightChunk hands it over in wire
// form with the data borrowed from the tensors (no copy, see
// weight_chunk_buffer.h). Receiver: WeightReceiver validates every
// chunk (version, names, shapes, offsets, sizes, checksums) and writes the data
// straight into destination buffers the caller prepared beside the live
// weights; Finish() says whether the staged copy is complete. The caller swaps
// only then, so a corrupt or aborted transfer never touches serving weights.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "zerorl/v1/rollout.pb.h"

namespace zerorl {

// A tensor to send: float32 host data, numel = prod(shape).
struct WeightTensor {
  std::string name;            // HF name
  std::vector<int64_t> shape;
  const float* data = nullptr;
  int64_t numel = 0;
};

struct ChunkOptions {
  int64_t version = 0;
  std::string config_json;             // sent on the very first chunk
  int64_t chunk_bytes = 4 << 20;       // max data bytes per chunk (> 0; rounded down to whole elements)
  bool bf16 = false;                   // wire dtype BF16 (round to nearest even) instead of F32
};

// Calls emit(chunk) for every chunk in order. emit returns false when the
// stream broke; the walk then stops with UNAVAILABLE. The chunk object is
// reused between calls (copy it if you keep it).
absl::Status ForEachWeightChunk(const std::vector<WeightTensor>& tensors, const ChunkOptions& options,
                                const std::function<bool(const zerorl::v1::WeightChunk&)>& emit);

// One chunk in protobuf wire form, split around its data field so the data
// need not be copied: prefix (the data field's tag and length) + data + suffix
// (every other field, serialised; protobuf accepts fields in any order).
struct WireChunk {
  std::string prefix;
  const char* borrowed = nullptr;  // F32: points into the caller's tensor
  std::string owned;               // BF16: the converted data (borrowed == nullptr)
  size_t size = 0;                 // data bytes
  std::string suffix;
  absl::string_view data() const { return {borrowed != nullptr ? borrowed : owned.data(), size}; }
};

// The same chunks as ForEachWeightChunk, each as a WireChunk. F32 data is
// borrowed from `tensors` (which must stay alive and unchanged until every
// emitted chunk is released); the walk computes each tensor's CRC-32C on the way.
absl::Status ForEachWireWeightChunk(const std::vector<WeightTensor>& tensors, const ChunkOptions& options,
                                    const std::function<bool(WireChunk&&)>& emit);

// Where one received tensor lands.
struct WeightDestination {
  std::vector<int64_t> shape;
  float* data = nullptr;  // numel floats, owned by the caller
  int64_t numel = 0;
};
using WeightDestinations = std::map<std::string, WeightDestination>;

// Validates and stages one transfer. Not thread-safe (one stream = one receiver).
class WeightReceiver {
 public:
  // Called once with the transfer's first chunk (version, tensor_count,
  // config_json); returns where each tensor goes. An error aborts the transfer.
  using Prepare = std::function<absl::StatusOr<WeightDestinations>(const zerorl::v1::WeightChunk& first)>;
  explicit WeightReceiver(Prepare prepare) : prepare_(std::move(prepare)) {}

  // INVALID_ARGUMENT / DATA_LOSS (checksum) naming the tensor; after an error
  // every later call returns the same error. Adds the chunk, then the chunks
  // in its `batch` field in order.
  absl::Status Add(const zerorl::v1::WeightChunk& chunk);
  // One chunk whose data arrived apart from its other fields: `header.data()`
  // and `header.batch()` are ignored, the data is the concatenation of `data`.
  absl::Status Add(const zerorl::v1::WeightChunk& header, absl::Span<const absl::string_view> data);
  // OK when every destination tensor arrived whole and verified. An empty or
  // short stream is ABORTED ("transfer ended after k of n tensors").
  absl::Status Finish();

  int64_t version() const { return version_; }
  int64_t bytes() const { return bytes_; }  // wire data bytes received
  const std::string& config_json() const { return config_json_; }

 private:
  absl::Status AddImpl(const zerorl::v1::WeightChunk& header, absl::Span<const absl::string_view> data);

  Prepare prepare_;
  absl::Status error_;
  bool started_ = false;
  int64_t version_ = -1;
  int32_t tensor_count_ = 0;
  std::string config_json_;
  WeightDestinations dest_;
  int64_t bytes_ = 0;
  int32_t done_ = 0;
  // The tensor in progress.
  std::string current_;
  int64_t current_offset_ = 0, current_bytes_ = 0, elem_bytes_ = 4;
  uint32_t current_crc_ = 0;
  std::map<std::string, bool> received_;
};

}  // namespace zerorl
