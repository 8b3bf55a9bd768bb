// NcclComm: a small NCCL communicator for the GPUs of a learner (data-parallel
// gradient all-reduce) and for weight broadcast from the learner to rollout
// workers that share a NCCL group (the gRPC weight stream stays the fallback
// that always works). One rank per process (or per thread), one device each.
//
// Bootstrap: rank 0 creates a unique id (NcclNewUniqueId) and hands it to the
// other ranks — through a shared file (WriteNcclIdFile / ReadNcclIdFile, an
// atomic rename, readers poll) or any other channel (the id is 128 opaque
// bytes, e.g. a field of a gRPC message). Then every rank calls
// NcclComm::Create(id, nranks, rank, device), which blocks until all ranks
// have joined.
//
// Collectives run on the communicator's own CUDA stream and wait for it
// before returning, so the buffer is ready for the caller (and for work on
// the default stream) afterwards. Pointers are device memory (fp32).
// Host-compiler friendly (no CUDA/NCCL headers here); built when ZERORL_CUDA
// is on and NCCL is found (target zerorl_nccl).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace zerorl::weights {

// A fresh NCCL unique id (128 bytes). Call on rank 0 only.
absl::StatusOr<std::string> NcclNewUniqueId();

// Writes the id to `path` atomically (path.tmp + rename).
absl::Status WriteNcclIdFile(const std::string& path, const std::string& id);
// Waits up to `timeout` for `path` to appear, then reads and checks it.
// DEADLINE_EXCEEDED if it never appears; INVALID_ARGUMENT if it is not an id file.
absl::StatusOr<std::string> ReadNcclIdFile(const std::string& path, absl::Duration timeout);

class NcclComm {
 public:
  // INVALID_ARGUMENT for a bad id/nranks/rank; FAILED_PRECONDITION without a
  // usable device; INTERNAL with NCCL's message when ncclCommInitRank fails.
  static absl::StatusOr<std::unique_ptr<NcclComm>> Create(const std::string& unique_id, int nranks, int rank,
                                                          int device);
  ~NcclComm();
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;

  // buf[0..n) = sum over ranks (in place). With average, divided by nranks.
  absl::Status AllReduce(float* buf, int64_t n, bool average = false);
  // buf[0..n) on every rank = buf of `root`.
  absl::Status Broadcast(float* buf, int64_t n, int root);

  int rank() const { return rank_; }
  int nranks() const { return nranks_; }
  int device() const { return device_; }

 private:
  NcclComm(void* comm, void* stream, int nranks, int rank, int device)
      : comm_(comm), stream_(stream), nranks_(nranks), rank_(rank), device_(device) {}
  absl::Status Finish(int nccl_result, const char* what);
  void* comm_;    // ncclComm_t
  void* stream_;  // cudaStream_t
  int nranks_, rank_, device_;
};

}  // namespace zerorl::weights
