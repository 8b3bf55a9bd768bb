// WeightChunk <-> grpc::ByteBuffer without copying the data field (see weight_chunk_buffer.h).
#include "weights/weight_chunk_buffer.h"

#include <algorithm>
#include <mutex>
#include <utility>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace zerorl {

using zerorl::v1::WeightChunk;

namespace {

// A read cursor over the slices of one message.
class SliceCursor {
 public:
  explicit SliceCursor(const std::vector<grpc::Slice>& slices) : slices_(slices) {
    for (const grpc::Slice& s : slices_) left_ += s.size();
    Settle();
  }
  size_t left() const { return left_; }

  bool Byte(uint8_t* b) {
    if (left_ == 0) return false;
    *b = slices_[i_].begin()[at_];
    Advance(1);
    return true;
  }
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b;
      if (!Byte(&b)) return false;
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;  // more than 10 bytes
  }
  // The next n bytes as views into the slices (n <= left()).
  void Views(size_t n, std::vector<absl::string_view>* out) {
    while (n > 0) {
      const size_t k = std::min(n, slices_[i_].size() - at_);
      out->emplace_back(reinterpret_cast<const char*>(slices_[i_].begin()) + at_, k);
      Advance(k);
      n -= k;
    }
  }
  void Append(size_t n, std::string* out) {  // copies the next n bytes (n <= left())
    std::vector<absl::string_view> v;
    Views(n, &v);
    for (absl::string_view p : v) out->append(p.data(), p.size());
  }

 private:
  void Advance(size_t n) {  // n <= bytes left in the current slice
    at_ += n;
    left_ -= n;
    Settle();
  }
  void Settle() {  // step over finished and empty slices
    while (i_ < slices_.size() && at_ == slices_[i_].size()) {
      ++i_;
      at_ = 0;
    }
  }
  const std::vector<grpc::Slice>& slices_;
  size_t i_ = 0, at_ = 0, left_ = 0;
};

void AppendVarint(uint64_t v, std::string* out) {
  for (; v >= 0x80; v >>= 7) out->push_back(static_cast<char>((v & 0x7f) | 0x80));
  out->push_back(static_cast<char>(v));
}

void ReleaseString(void* p) { delete static_cast<std::string*>(p); }

}  // namespace

namespace {

// Parses the fields of one chunk from `in` until `in.left()` drops to `end`.
// Batch entries (only when `top`) are appended to *batch, each parsed the same way.
absl::Status ParsePart(SliceCursor& in, size_t end, bool top, ReceivedChunk::Part* part,
                       std::vector<ReceivedChunk::Part>* batch) {
  std::string rest;  // every field but data and batch, re-serialised in order
  auto overrun = [] { return absl::InvalidArgumentError("weight chunk: a batch entry overruns its length"); };
  while (in.left() > end) {
    uint64_t tag = 0, len = 0;
    if (!in.Varint(&tag)) return absl::InvalidArgumentError("weight chunk: truncated field tag");
    if (in.left() < end) return overrun();
    const uint64_t field = tag >> 3;
    const int wire = static_cast<int>(tag & 7);
    if (field == 0) return absl::InvalidArgumentError("weight chunk: field number 0");
    if (wire == 2) {
      if (!in.Varint(&len)) return absl::InvalidArgumentError(absl::StrCat("weight chunk: truncated length of field ", field));
      if (in.left() < end) return overrun();
      if (len > in.left() - end)
        return absl::InvalidArgumentError(absl::StrCat("weight chunk: field ", field, " claims ", len, " bytes, ",
                                                       in.left() - end, " left"));
      if (field == WeightChunk::kDataFieldNumber) {
        part->data.clear();  // protobuf semantics: the last occurrence wins
        in.Views(len, &part->data);
        continue;
      }
      if (field == WeightChunk::kBatchFieldNumber) {
        if (!top) return absl::InvalidArgumentError("weight chunk: a batch inside a batch");
        batch->emplace_back();
        ZRL_RETURN_IF_ERROR(ParsePart(in, in.left() - len, false, &batch->back(), nullptr));
        continue;
      }
    }
    // Not data: re-encode the tag (and length) already read, then copy the value.
    AppendVarint(tag, &rest);
    switch (wire) {
      case 0: {
        uint64_t v;
        if (!in.Varint(&v)) return absl::InvalidArgumentError(absl::StrCat("weight chunk: truncated varint field ", field));
        if (in.left() < end) return overrun();
        AppendVarint(v, &rest);
        break;
      }
      case 1:
      case 5: {
        const size_t k = wire == 1 ? 8 : 4;
        if (in.left() < end + k) return absl::InvalidArgumentError(absl::StrCat("weight chunk: truncated fixed field ", field));
        in.Append(k, &rest);
        break;
      }
      case 2:
        AppendVarint(len, &rest);
        in.Append(len, &rest);
        break;
      default:
        return absl::InvalidArgumentError(absl::StrCat("weight chunk: field ", field, " has wire type ", wire));
    }
  }
  if (!part->header.ParseFromString(rest)) return absl::InvalidArgumentError("weight chunk: malformed header fields");
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseWeightChunkBuffer(const grpc::ByteBuffer& buffer, ReceivedChunk* out) {
  out->parts.clear();
  out->slices.clear();
  if (!buffer.Valid()) return absl::InvalidArgumentError("empty weight chunk message");
  if (!buffer.Dump(&out->slices).ok()) return absl::InvalidArgumentError("unreadable weight chunk message");
  SliceCursor in(out->slices);
  std::vector<ReceivedChunk::Part> batch;
  out->parts.emplace_back();
  ZRL_RETURN_IF_ERROR(ParsePart(in, 0, true, &out->parts[0], &batch));
  for (auto& p : batch) out->parts.push_back(std::move(p));
  return absl::OkStatus();
}

grpc::ByteBuffer WireChunksToByteBuffer(std::vector<WireChunk>&& chunks, const std::function<BorrowHook()>& borrow) {
  std::vector<grpc::Slice> slices;
  slices.reserve(3 * chunks.size());
  for (size_t i = 0; i < chunks.size(); ++i) {
    WireChunk& c = chunks[i];
    std::string head;
    if (i > 0) {  // a batch entry: the field's tag and length, then the chunk itself
      AppendVarint((WeightChunk::kBatchFieldNumber << 3) | 2, &head);
      AppendVarint(c.prefix.size() + c.size + c.suffix.size(), &head);
    }
    head += c.prefix;
    slices.emplace_back(head.data(), head.size());  // copies (a few bytes)
    if (c.borrowed != nullptr) {
      const BorrowHook hook = borrow();
      slices.emplace_back(const_cast<char*>(c.borrowed), c.size, hook.release, hook.user);
    } else {
      auto* owned = new std::string(std::move(c.owned));
      slices.emplace_back(owned->data(), owned->size(), ReleaseString, owned);
    }
    slices.emplace_back(c.suffix.data(), c.suffix.size());
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

void KeepFreedHeapForWeightTransfers() {
#if defined(__GLIBC__)
  static std::once_flag once;
  std::call_once(once, [] {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);   // allocations up to 32 MiB come from the heap, not mmap
    mallopt(M_TRIM_THRESHOLD, 256 << 20);  // keep up to 256 MiB of free heap top per arena
    mallopt(M_ARENA_MAX, 2);               // few arenas, so freed buffers are found again (see .h)
  });
#endif
}

}  // namespace zerorl
