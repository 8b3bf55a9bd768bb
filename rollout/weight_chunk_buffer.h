// WeightChunk <-> grpc::ByteBuffer without copying the data field.
//
// A 4 MiB chunk's `data` is most of its bytes; parsing it into a protobuf
// std::string (receiver) or serialising it into one (sender) is a full extra
// copy per byte. These helpers keep the protobuf wire format exactly (a normal
// WeightChunk parser reads what ToByteBuffer writes, and ParseWeightChunkBuffer
// reads any serialised WeightChunk) but let the data bytes stay where they are:
//   sender:   [data tag + length] [data, borrowed] [every other field]
//   receiver: the other fields parsed into a WeightChunk, the data as views
//             into the received slices (no copy until it lands in staging).
#pragma once

#include <string>
#include <vector>

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rollout/weight_transfer.h"
#include "zerorl/v1/rollout.pb.h"

namespace zerorl {

// A received chunk: `header` holds every field but data; `data` views the
// data bytes in order, inside `slices` (which keep them alive).
struct ReceivedChunk {
  zerorl::v1::WeightChunk header;
  std::vector<grpc::Slice> slices;
  std::vector<absl::string_view> data;
};

// Parses one serialised WeightChunk. INVALID_ARGUMENT naming the defect on
// malformed bytes (truncated varint, length past the end, bad header fields).
// `out` is reused between calls.
absl::Status ParseWeightChunkBuffer(const grpc::ByteBuffer& buffer, ReceivedChunk* out);

// Calls `release(user)` once gRPC no longer references borrowed chunk data.
struct BorrowHook {
  void (*release)(void* user) = nullptr;
  void* user = nullptr;
};

// The chunk as a three-slice ByteBuffer. Borrowed data (chunk.borrowed()) is
// referenced, not copied; the caller keeps it alive and unchanged until
// `hook.release` has run (once per call of this function with borrowed data).
// Owned data is moved into the buffer.
grpc::ByteBuffer WireChunkToByteBuffer(WireChunk&& chunk, const BorrowHook& hook);

// For a process that receives weights: makes glibc malloc keep freed heap
// memory instead of handing it back after every message. gRPC reads each
// chunk into fresh multi-MB buffers; with the default (dynamic) thresholds the
// arena is trimmed (madvise) when they are freed and every page faults in
// again on the next read, which measured as the largest single cost of a
// receive. Sets M_MMAP_THRESHOLD to 32 MiB and M_TRIM_THRESHOLD to 256 MiB
// (process-wide; idempotent). No-op where glibc's mallopt is unavailable.
void KeepFreedHeapForWeightTransfers();

}  // namespace zerorl
