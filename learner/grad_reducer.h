// GradReducer: the gradient all-reduce of the data-parallel learner. One
// reducer per rank; every rank calls AllReduceSum concurrently (from its own
// thread) with its gradient buffer, and each returns when the buffer holds
// the sum over all ranks. Two implementations:
//   host  in-process, through a barrier: each rank sums its 1/R slice of the
//         elements over the ranks' buffers in rank order and writes the sum
//         back to every buffer — deterministic. A rank whose buffer is device
//         memory (a backend without host_memory) stages it through the host
//         (download, sum, upload): the fallback for GPUs without NCCL.
//   nccl  one NcclComm per rank (all in this process), ncclAllReduce(sum) on
//         device memory. Only when the build has NCCL (ZERORL_HAVE_NCCL).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/ops/ops.h"

namespace zerorl::learner {

class GradReducer {
 public:
  virtual ~GradReducer() = default;
  // buf[0..n) (this rank's backend memory) = Σ over ranks of buf[0..n), in
  // place. All ranks must call it at once with the same n; INVALID_ARGUMENT
  // on every rank when the ns differ.
  virtual absl::Status AllReduceSum(float* buf, int64_t n) = 0;
  virtual int rank() const = 0;
  virtual int nranks() const = 0;
  virtual const char* kind() const = 0;  // "host" or "nccl"
};

// One host reducer per rank; backends[r] is the memory rank r's buffers live
// in (nullptr or a host-memory backend: host pointers; otherwise staged).
std::vector<std::unique_ptr<GradReducer>> NewHostGradReducers(const std::vector<model::ops::Backend*>& backends);

// True when this build has the NCCL reducer.
bool HaveNcclGradReducer();

// One NCCL reducer per rank, rank r on CUDA device devices[r] (distinct).
// Creates the communicators together (one thread per rank). FAILED_PRECONDITION
// when built without NCCL; NcclComm::Create's errors otherwise.
absl::StatusOr<std::vector<std::unique_ptr<GradReducer>>> NewNcclGradReducers(const std::vector<int>& devices);

}  // namespace zerorl::learner
