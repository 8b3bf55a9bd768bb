// WeightChunk sending and validated receiving (see weight_transfer.h).
#include "weights/weight_transfer.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "model/safetensors.h"
#include "weights/crc32c.h"

namespace zerorl {

using zerorl::v1::WeightChunk;

namespace {

// Walks every chunk of every tensor in order. For each it fills `header` with
// every field but data, crc32c and last_of_tensor, and calls
// put(header, src, nbytes, crc, last): `put` writes the chunk's data, extends
// *crc over it, marks the last chunk of a tensor, and emits (false = stream broke).
using ChunkPut = std::function<bool(WeightChunk* header, const void* src, uint64_t nbytes,
                                    uint32_t* crc, bool last)>;

absl::Status WalkChunks(const std::vector<WeightTensor>& tensors, const ChunkOptions& options,
                        const ChunkPut& put) {
  const int64_t elem = options.bf16 ? 2 : 4;
  const int64_t chunk_elems = options.chunk_bytes / elem;
  if (chunk_elems <= 0) return absl::InvalidArgumentError(absl::StrCat("weight chunk_bytes ", options.chunk_bytes, " is too small"));
  WeightChunk header;
  std::vector<uint16_t> bf;
  bool first = true;
  for (const WeightTensor& t : tensors) {
    uint32_t crc = 0;
    int64_t start = 0;
    do {
      const int64_t n = std::min(chunk_elems, t.numel - start);
      header.Clear();
      header.set_version(options.version);
      header.set_tensor(t.name);
      header.set_dtype(options.bf16 ? "BF16" : "F32");
      header.set_offset(start * elem);
      header.set_tensor_bytes(t.numel * elem);
      if (first) {
        header.set_tensor_count(static_cast<int32_t>(tensors.size()));
        header.set_config_json(options.config_json);
        first = false;
      }
      if (start == 0)
        for (int64_t d : t.shape) header.add_shape(d);
      const void* src = t.data + start;
      if (options.bf16) {
        bf.resize(n);
        for (int64_t i = 0; i < n; ++i) bf[i] = model::F32ToBf16(t.data[start + i]);
        src = bf.data();
      }
      start += n;
      if (!put(&header, src, static_cast<uint64_t>(n * elem), &crc, start == t.numel))
        return absl::UnavailableError(absl::StrCat("weight stream broke while sending ", t.name));
    } while (start < t.numel);
  }
  return absl::OkStatus();
}

void MarkLast(WeightChunk* header, uint32_t crc, bool last) {
  if (!last) return;
  header->set_last_of_tensor(true);
  header->set_crc32c(crc);
}

// Appends the data field's tag and the varint length `nbytes`.
void AppendDataPrefix(uint64_t nbytes, std::string* s) {
  s->push_back(static_cast<char>((WeightChunk::kDataFieldNumber << 3) | 2));  // length-delimited
  for (uint64_t v = nbytes;; v >>= 7) {
    if (v < 0x80) {
      s->push_back(static_cast<char>(v));
      break;
    }
    s->push_back(static_cast<char>((v & 0x7f) | 0x80));
  }
}

}  // namespace

absl::Status ForEachWeightChunk(const std::vector<WeightTensor>& tensors, const ChunkOptions& options,
                                const std::function<bool(const WeightChunk&)>& emit) {
  return WalkChunks(tensors, options,
                    [&](WeightChunk* c, const void* src, uint64_t nbytes, uint32_t* crc, bool last) {
                      c->set_data(src, nbytes);
                      *crc = Crc32cExtend(*crc, src, nbytes);
                      MarkLast(c, *crc, last);
                      return emit(*c);
                    });
}

absl::Status ForEachWireWeightChunk(const std::vector<WeightTensor>& tensors, const ChunkOptions& options,
                                    const std::function<bool(WireChunk&&)>& emit) {
  return WalkChunks(tensors, options,
                    [&](WeightChunk* header, const void* src, uint64_t nbytes, uint32_t* crc, bool last) {
                      WireChunk w;
                      w.size = nbytes;
                      if (options.bf16) {  // src is WalkChunks' conversion buffer, reused: keep a copy
                        w.owned.resize(nbytes);
                        *crc = Crc32cExtendCopy(*crc, w.owned.data(), src, nbytes);
                      } else {
                        w.borrowed = static_cast<const char*>(src);
                        *crc = Crc32cExtend(*crc, src, nbytes);
                      }
                      MarkLast(header, *crc, last);
                      AppendDataPrefix(nbytes, &w.prefix);
                      header->SerializeToString(&w.suffix);
                      return emit(std::move(w));
                    });
}

absl::Status WeightReceiver::Add(const WeightChunk& chunk) {
  absl::string_view data = chunk.data();
  ZRL_RETURN_IF_ERROR(Add(chunk, absl::MakeConstSpan(&data, 1)));
  for (const WeightChunk& b : chunk.batch()) {
    if (b.batch_size() > 0) {
      error_ = absl::InvalidArgumentError(absl::StrCat("weight chunk of ", b.tensor(), " nests a batch in a batch"));
      return error_;
    }
    data = b.data();
    ZRL_RETURN_IF_ERROR(Add(b, absl::MakeConstSpan(&data, 1)));
  }
  return absl::OkStatus();
}

absl::Status WeightReceiver::Add(const WeightChunk& header, absl::Span<const absl::string_view> data) {
  if (!error_.ok()) return error_;
  error_ = AddImpl(header, data);
  return error_;
}

absl::Status WeightReceiver::AddImpl(const WeightChunk& c, absl::Span<const absl::string_view> data) {
  if (!started_) {
    started_ = true;
    if (c.tensor_count() <= 0)
      return absl::InvalidArgumentError("first weight chunk has no tensor_count");
    version_ = c.version();
    tensor_count_ = c.tensor_count();
    config_json_ = c.config_json();
    auto dest = prepare_(c);
    if (!dest.ok()) return dest.status();
    dest_ = std::move(*dest);
    if (static_cast<int64_t>(dest_.size()) != tensor_count_)
      return absl::InvalidArgumentError(absl::StrCat("transfer announces ", tensor_count_, " tensors, the model has ",
                                                     dest_.size()));
  }
  if (c.version() != version_)
    return absl::InvalidArgumentError(absl::StrCat("chunk of ", c.tensor(), " has version ", c.version(),
                                                   ", the transfer is version ", version_));
  if (current_.empty()) {  // a new tensor begins
    auto it = dest_.find(c.tensor());
    if (it == dest_.end()) return absl::InvalidArgumentError(absl::StrCat("unknown tensor \"", c.tensor(), "\""));
    if (received_.count(c.tensor())) return absl::InvalidArgumentError(absl::StrCat("tensor ", c.tensor(), " sent twice"));
    if (c.offset() != 0)
      return absl::InvalidArgumentError(absl::StrCat("tensor ", c.tensor(), " starts at offset ", c.offset()));
    const std::vector<int64_t> shape(c.shape().begin(), c.shape().end());
    if (shape != it->second.shape)
      return absl::InvalidArgumentError(absl::StrCat("tensor ", c.tensor(), " has shape [", absl::StrJoin(shape, ","),
                                                     "], expected [", absl::StrJoin(it->second.shape, ","), "]"));
    if (c.dtype() == "F32") elem_bytes_ = 4;
    else if (c.dtype() == "BF16") elem_bytes_ = 2;
    else return absl::InvalidArgumentError(absl::StrCat("tensor ", c.tensor(), " has unsupported dtype \"", c.dtype(), "\""));
    if (c.tensor_bytes() != it->second.numel * elem_bytes_)
      return absl::InvalidArgumentError(absl::StrCat("tensor ", c.tensor(), " announces ", c.tensor_bytes(),
                                                     " bytes, expected ", it->second.numel * elem_bytes_));
    current_ = c.tensor();
    current_offset_ = 0;
    current_bytes_ = c.tensor_bytes();
    current_crc_ = 0;
  } else if (c.tensor() != current_) {
    return absl::InvalidArgumentError(absl::StrCat("chunk of ", c.tensor(), " arrived before ", current_, " was complete"));
  }
  int64_t n = 0;
  for (absl::string_view piece : data) n += static_cast<int64_t>(piece.size());
  if (c.offset() != current_offset_)
    return absl::InvalidArgumentError(absl::StrCat("tensor ", current_, ": chunk at offset ", c.offset(), ", expected ",
                                                   current_offset_));
  if (n % elem_bytes_ != 0 || current_offset_ + n > current_bytes_)
    return absl::InvalidArgumentError(absl::StrCat("tensor ", current_, ": chunk of ", n, " bytes at offset ",
                                                   c.offset(), " overruns its ", current_bytes_, " bytes"));
  const WeightDestination& d = dest_[current_];
  if (elem_bytes_ == 4) {  // wire bytes == staged bytes: one fused copy + CRC pass per piece
    char* to = reinterpret_cast<char*>(d.data) + current_offset_;
    for (absl::string_view piece : data) {
      current_crc_ = Crc32cExtendCopy(current_crc_, to, piece.data(), piece.size());
      to += piece.size();
    }
  } else {  // BF16: a value may straddle two pieces, so convert from one contiguous copy
    std::string joined;
    absl::string_view bytes = data.empty() ? absl::string_view() : data[0];
    if (data.size() > 1) {
      joined.reserve(n);
      for (absl::string_view piece : data) joined.append(piece.data(), piece.size());
      bytes = joined;
    }
    current_crc_ = Crc32cExtend(current_crc_, bytes.data(), n);
    const auto* src = reinterpret_cast<const uint8_t*>(bytes.data());
    const int64_t first_elem = current_offset_ / elem_bytes_;
    for (int64_t i = 0; i < n / 2; ++i) {
      uint16_t v;
      std::memcpy(&v, src + 2 * i, 2);
      d.data[first_elem + i] = model::Bf16ToF32(v);
    }
  }
  current_offset_ += n;
  bytes_ += n;
  if (c.last_of_tensor()) {
    if (current_offset_ != current_bytes_)
      return absl::InvalidArgumentError(absl::StrCat("tensor ", current_, " ended after ", current_offset_, " of ",
                                                     current_bytes_, " bytes"));
    if (current_crc_ != c.crc32c())
      return absl::DataLossError(absl::StrCat("tensor ", current_, " failed its checksum (crc32c ", current_crc_,
                                              ", sender said ", c.crc32c(), ")"));
    received_[current_] = true;
    ++done_;
    current_.clear();
  }
  return absl::OkStatus();
}

absl::Status WeightReceiver::Finish() {
  if (!error_.ok()) return error_;
  if (!started_) return absl::AbortedError("weight transfer ended before its first chunk");
  if (!current_.empty() || done_ != tensor_count_)
    return absl::AbortedError(absl::StrCat("weight transfer ended after ", done_, " of ", tensor_count_, " tensors",
                                           current_.empty() ? "" : absl::StrCat(" (", current_, " incomplete)")));
  return absl::OkStatus();
}

}  // namespace zerorl
