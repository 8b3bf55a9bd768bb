// WeightChunk <-> grpc::ByteBuffer without copying the data field.
//
// A 4 MiB chunk's `data` is most of its bytes; parsing it into a protobuf
// std::string (receiver) or serialising it into one (sender) is a full extra
// copy per byte. These helpers keep the protobuf wire format exactly (a normal
// WeightChunk parser reads what ToByteBuffer writes, and ParseWeightChunkBuffer
// reads any serialised WeightChunk) but let the data bytes stay where they are:
//   sender:   [data tag + length] [data, borrowed] [every other field], and
//             for each batched chunk [batch tag + length + data tag + length]
//             [data, borrowed] [its other fields]
//   receiver: the other fields parsed into a WeightChunk, the data as views
//             into the received slices (no copy until it lands in staging).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "weights/weight_transfer.h"
#include "zerorl/v1/rollout.pb.h"

namespace zerorl {

// A received message: its own chunk, then the chunks of its `batch` field,
// each as `header` (every field but data and batch) + `data` (views of the
// data bytes, in order, inside `slices`, which keep them alive).
struct ReceivedChunk {
  struct Part {
    zerorl::v1::WeightChunk header;
    std::vector<absl::string_view> data;
  };
  std::vector<Part> parts;
  std::vector<grpc::Slice> slices;
};

// Parses one serialised WeightChunk (batch entries included). INVALID_ARGUMENT
// naming the defect on malformed bytes (truncated varint, length past the end,
// bad header fields, a batch inside a batch). `out` is reused between calls.
absl::Status ParseWeightChunkBuffer(const grpc::ByteBuffer& buffer, ReceivedChunk* out);

// Calls `release(user)` once gRPC no longer references borrowed chunk data.
struct BorrowHook {
  void (*release)(void* user) = nullptr;
  void* user = nullptr;
};

// One message carrying `chunks` (non-empty): the first as the message's own
// fields, the others as its `batch` entries; three slices per chunk. Borrowed
// data (chunk.borrowed) is referenced, not copied: `borrow()` is called once
// for each such chunk and its hook runs when gRPC lets go of that data, which
// the caller keeps alive and unchanged until then. Owned data is moved in.
grpc::ByteBuffer WireChunksToByteBuffer(std::vector<WireChunk>&& chunks, const std::function<BorrowHook()>& borrow);

// For a process that receives weights: makes glibc malloc keep and reuse
// freed heap memory instead of handing it back after every message. gRPC reads
// each message into fresh multi-MB buffers; with the default (dynamic)
// thresholds the arena is trimmed (madvise) when they are freed and every page
// faults in again on the next read, which measured as the largest single cost
// of a receive. gRPC's poller threads come and go, and with glibc's default of
// 8 arenas per core each new one tends to land in an arena that has not held
// such buffers yet (measured with perf stat: about 5k fewer page faults per
// reference-model push with 2 arenas than with the default). Sets M_MMAP_THRESHOLD to 32 MiB,
// M_TRIM_THRESHOLD to 256 MiB and M_ARENA_MAX to 2 (process-wide; idempotent;
// call before the gRPC server starts). No-op where glibc's mallopt is absent.
void KeepFreedHeapForWeightTransfers();

}  // namespace zerorl
