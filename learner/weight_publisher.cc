// Parallel UpdateWeights pushes (see weight_publisher.h).
//
// Each message is built ONCE as a gRPC ByteBuffer whose data slices point
// into the learner's tensors (no copy; the CRC-32C pass is the only read on
// this side, see weight_chunk_buffer.h) and written by every worker's stream,
// so the sender's CPU cost does not grow with the number of workers. Small
// tensors are batched into one message up to chunk_bytes. A producer thread
// computes the checksums ahead of the streams; borrowed data costs no memory,
// so it is never held back by the slowest stream (which would tie the streams
// together), except for owned (BF16) data, bounded by kMaxOwnedBytes.
// PublishWeights returns only after gRPC has released every borrowed slice, so
// the caller may change or free the tensors afterwards.
#include "learner/weight_publisher.h"

#include <deque>
#include <limits>
#include <thread>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/server.h"
#include "learner/nccl_weight_broadcaster.h"
#include "weights/weight_group.h"
#include "common/status.h"
#include "common/log.h"
#include "weights/weight_chunk_buffer.h"
#include "zerorl/v1/rollout.pb.h"

namespace zerorl::learner {
namespace {

constexpr size_t kMaxOwnedBytes = 64 << 20;  // owned chunk bytes produced ahead of the slowest stream
constexpr size_t kGone = std::numeric_limits<size_t>::max();

class SharedChunks {
 public:
  explicit SharedChunks(size_t consumers) : next_(consumers, 0) {}

  // Producer side: append a chunk holding `owned` bytes of its own (0 when its
  // data is borrowed); false when every consumer has gone.
  bool Put(grpc::ByteBuffer bb, size_t owned) {
    absl::MutexLock lk(&mu_);
    while (!(owned == 0 || owned_ == 0 || owned_ + owned <= kMaxOwnedBytes || AllGone())) cv_.Wait(&mu_);
    if (AllGone()) return false;
    window_.push_back({std::move(bb), owned});
    owned_ += owned;
    cv_.SignalAll();
    return true;
  }
  void Finish(const absl::Status& st) {
    absl::MutexLock lk(&mu_);
    finished_ = true;
    status_ = st;
    cv_.SignalAll();
  }
  // Consumer side: chunk i, or false at the end of the transfer.
  bool Get(size_t consumer, size_t i, grpc::ByteBuffer* out) {
    absl::MutexLock lk(&mu_);
    while (!(i < base_ + window_.size() || finished_)) cv_.Wait(&mu_);
    if (i >= base_ + window_.size()) return false;
    *out = window_[i - base_].buffer;
    next_[consumer] = i + 1;
    Trim();
    return true;
  }
  void Leave(size_t consumer) {
    absl::MutexLock lk(&mu_);
    next_[consumer] = kGone;
    Trim();
  }
  void Clear() {  // drops the chunks still buffered (their slices borrow tensor memory)
    absl::MutexLock lk(&mu_);
    window_.clear();
    owned_ = 0;
  }
  absl::Status status() {
    absl::MutexLock lk(&mu_);
    return status_;
  }

 private:
  bool AllGone() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (size_t n : next_)
      if (n != kGone) return false;
    return true;
  }
  void Trim() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    size_t low = kGone;
    for (size_t n : next_) low = std::min(low, n);
    while (!window_.empty() && base_ < low) {
      owned_ -= window_.front().owned;
      window_.pop_front();
      ++base_;
    }
    cv_.SignalAll();
  }
  absl::Mutex mu_;
  absl::CondVar cv_;
  struct Entry {
    grpc::ByteBuffer buffer;
    size_t owned;
  };
  std::deque<Entry> window_ ABSL_GUARDED_BY(mu_);  // chunks not yet taken by every stream
  size_t owned_ ABSL_GUARDED_BY(mu_) = 0;          // owned bytes in window_
  size_t base_ ABSL_GUARDED_BY(mu_) = 0;           // index of window_.front()
  std::vector<size_t> next_ ABSL_GUARDED_BY(mu_);  // per consumer: next index it will read, kGone when it left
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

// Counts the chunk data slices gRPC still references (they borrow tensor memory).
class Borrows {
 public:
  BorrowHook Take() {
    absl::MutexLock lk(&mu_);
    ++out_;
    return {&Borrows::Release, this};
  }
  // Waits until every borrowed slice was released; false on timeout.
  bool WaitAllReleased(std::chrono::milliseconds timeout) {
    absl::MutexLock lk(&mu_);
    const absl::Time deadline = absl::Now() + absl::FromChrono(timeout);
    while (out_ != 0)
      if (cv_.WaitWithDeadline(&mu_, deadline)) return out_ == 0;  // timed out
    return true;
  }

 private:
  static void Release(void* self) {
    auto* b = static_cast<Borrows*>(self);
    absl::MutexLock lk(&b->mu_);
    if (--b->out_ == 0) b->cv_.SignalAll();
  }
  absl::Mutex mu_;
  absl::CondVar cv_;
  int64_t out_ ABSL_GUARDED_BY(mu_) = 0;  // slices gRPC still holds
};

// One client stream of pre-serialised chunks; returns the server's verdict.
absl::Status PushTo(const PublishTarget& target, SharedChunks* chunks, size_t k, std::chrono::milliseconds timeout,
                    int64_t* bytes) {
  grpc::GenericStub stub(target.channel);
  grpc::CompletionQueue cq;
  auto ctx = ContextWithDeadline(timeout);
  auto await = [&cq] {
    void* tag;
    bool ok = false;
    return cq.Next(&tag, &ok) && ok;
  };
  auto call = stub.PrepareCall(ctx.get(), "/zerorl.v1.RolloutService/UpdateWeights", &cq);
  call->StartCall(nullptr);
  bool alive = await();
  grpc::ByteBuffer bb;
  for (size_t i = 0; alive && chunks->Get(k, i, &bb); ++i) {
    call->Write(bb, nullptr);
    alive = await();
  }
  chunks->Leave(k);
  if (alive) {
    call->WritesDone(nullptr);
    await();
  }
  grpc::ByteBuffer reply;
  call->Read(&reply, nullptr);
  const bool got_reply = await();
  grpc::Status st;
  call->Finish(&st, nullptr);
  await();
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
  if (!st.ok()) return FromGrpcStatus(st);
  if (!got_reply) return absl::UnavailableError("no reply to UpdateWeights");
  std::vector<grpc::Slice> slices;
  if (!reply.Dump(&slices).ok()) return absl::InternalError("unreadable UpdateWeights reply");
  std::string text;
  for (const auto& s : slices) text.append(reinterpret_cast<const char*>(s.begin()), s.size());
  zerorl::v1::UpdateWeightsResponse resp;
  if (!resp.ParseFromString(text)) return absl::InternalError("malformed UpdateWeights reply");
  *bytes = resp.bytes();
  return absl::OkStatus();
}

}  // namespace

PublishResult PublishWeights(const std::vector<PublishTarget>& targets, const std::vector<WeightTensor>& tensors,
                             const ChunkOptions& options, std::chrono::milliseconds timeout) {
  PublishResult result;
  if (targets.empty()) return result;
  // Heap-allocated: if gRPC never released a slice, its release callback must
  // still find the counter, so it is then leaked rather than freed.
  auto* borrows = new Borrows;
  SharedChunks chunks(targets.size());
  std::vector<absl::Status> status(targets.size());
  std::vector<int64_t> bytes(targets.size(), 0);
  const auto t0 = std::chrono::steady_clock::now();
  std::thread producer([&] {
    // Consecutive chunks share a message up to chunk_bytes of data (small
    // tensors would otherwise pay a message's fixed cost each).
    std::vector<WireChunk> batch;
    int64_t batch_bytes = 0;
    auto flush = [&] {
      if (batch.empty()) return true;
      size_t owned = 0;
      for (const WireChunk& c : batch) owned += c.borrowed != nullptr ? 0 : c.size;
      grpc::ByteBuffer message = WireChunksToByteBuffer(std::move(batch), [&] { return borrows->Take(); });
      batch.clear();
      batch_bytes = 0;
      return chunks.Put(std::move(message), owned);
    };
    absl::Status st = ForEachWireWeightChunk(tensors, options, [&](WireChunk&& c) {
      if (batch_bytes + static_cast<int64_t>(c.size) > options.chunk_bytes && !flush()) return false;
      batch_bytes += static_cast<int64_t>(c.size);
      batch.push_back(std::move(c));
      return true;
    });
    if (st.ok() && !flush()) st = absl::UnavailableError("every weight stream broke");
    chunks.Finish(st);
  });
  std::vector<std::thread> streams;
  for (size_t i = 0; i < targets.size(); ++i)
    streams.emplace_back([&, i] { status[i] = PushTo(targets[i], &chunks, i, timeout, &bytes[i]); });
  for (auto& t : streams) t.join();
  producer.join();
  chunks.Clear();
  if (borrows->WaitAllReleased(std::chrono::seconds(30)))
    delete borrows;
  else
    ZLOG(ERROR) << "gRPC still holds weight chunk slices 30 s after the push ended";
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const absl::Status produced = chunks.status();
  for (size_t i = 0; i < targets.size(); ++i) {
    absl::Status st = status[i];
    if (!produced.ok() && !absl::IsUnavailable(produced)) st = produced;  // our own error explains the abort
    if (st.ok()) result.bytes += bytes[i];
    else result.errors.push_back(absl::StrCat(targets[i].address, ": ", st.ToString()));
  }
  result.mb_per_s = result.seconds > 0 ? result.bytes / result.seconds / 1e6 : 0;
  return result;
}

absl::StatusOr<WeightTransport> ParseWeightTransport(absl::string_view value) {
  if (value.empty() || value == "grpc") return WeightTransport::kGrpc;
  if (value == "nccl") return WeightTransport::kNccl;
  return absl::InvalidArgumentError(
      absl::StrCat("learner.weight_transport must be \"grpc\" or \"nccl\", got \"", value, "\""));
}

NcclWeightSource NcclWeightSourceOf(model::Model& model) {
  return {model.param_data(), model.NumParams(), !model.on_host(), weights::ModelConfigFingerprint(model.config())};
}

WeightPublisher::WeightPublisher(const Options& options) : options_(options) {
  if (options_.transport == WeightTransport::kNccl)
    nccl_ = std::make_unique<NcclWeightBroadcaster>(
        NcclWeightBroadcaster::Options{options_.nccl_device, options_.nccl_join_timeout});
}

WeightPublisher::~WeightPublisher() = default;

PublishResult WeightPublisher::Publish(const std::vector<PublishTarget>& targets, const NcclWeightSource& source,
                                       const std::function<std::vector<WeightTensor>()>& tensors,
                                       const ChunkOptions& options, std::chrono::milliseconds timeout) {
  if (!nccl_ || targets.empty()) return PublishWeights(targets, tensors(), options, timeout);
  const auto t0 = std::chrono::steady_clock::now();
  PublishResult result;
  const std::vector<absl::Status> sent = nccl_->Send(targets, source, options.version, timeout);
  std::vector<PublishTarget> stream;
  for (size_t i = 0; i < targets.size(); ++i) {
    if (sent[i].ok()) {
      ++result.nccl_workers;
      result.bytes += source.num_params * static_cast<int64_t>(sizeof(float));
    } else {
      stream.push_back(targets[i]);
      result.fallbacks.push_back(absl::StrCat(targets[i].address, ": ", sent[i].ToString()));
    }
  }
  if (!stream.empty()) {
    const PublishResult streamed = PublishWeights(stream, tensors(), options, timeout);
    result.bytes += streamed.bytes;
    result.errors = streamed.errors;
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.mb_per_s = result.seconds > 0 ? result.bytes / result.seconds / 1e6 : 0;
  return result;
}

}  // namespace zerorl::learner
