// NcclWeightMember: a rollout worker's side of the NCCL weight broadcast.
//
// The learner is rank 0 of a NCCL group whose other ranks are rollout workers
// holding their model in GPU memory. Join (JoinWeightGroup) validates the
// request and creates this worker's communicator, blocking until every rank
// has joined; Receive (ReceiveWeightsNccl) takes a spare model from the
// engine, runs the broadcast (root 0) straight into its parameter buffer
// (NumParams fp32, device to device) and swaps it in. Whatever fails here,
// the learner falls back to the UpdateWeights stream for this worker, so
// every error names what is wrong:
//   INVALID_ARGUMENT     unique id not 128 bytes, nranks < 2, rank not in 1..nranks-1
//   FAILED_PRECONDITION  model config fingerprint or parameter count differs from
//                        the learner's; the model is in host memory (CPU backend);
//                        no usable CUDA device; Receive before a Join
//   UNIMPLEMENTED        built without NCCL (ZERORL_HAVE_NCCL)
//   DEADLINE_EXCEEDED    the other ranks did not join within timeout_ms
//   INTERNAL             NCCL's own error text
// Thread-safe; one group at a time (a new Join replaces the old group).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "model/config.h"
#include "rollout/generation_engine.h"
#include "zerorl/v1/rollout.pb.h"

namespace zerorl::weights {
class NcclComm;
}  // namespace zerorl::weights

namespace zerorl::rollout {

// Bytes of a NCCL unique id.
inline constexpr size_t kNcclUniqueIdBytes = 128;

class NcclWeightMember {
 public:
  // `device`: the CUDA device this worker's model lives on.
  NcclWeightMember(GenerationEngine* engine, int device);
  ~NcclWeightMember();
  NcclWeightMember(const NcclWeightMember&) = delete;
  NcclWeightMember& operator=(const NcclWeightMember&) = delete;

  // Validates the request against this worker (errors in the banner); with
  // check_only it stops there, else it joins the group. Returns the device.
  absl::StatusOr<int> Join(const zerorl::v1::JoinWeightGroupRequest& request);
  // One broadcast into a spare model, then the swap to `version`.
  absl::StatusOr<UpdateResult> Receive(const zerorl::v1::ReceiveWeightsNcclRequest& request);

 private:
  absl::Status Validate(const zerorl::v1::JoinWeightGroupRequest& request) const;

  GenerationEngine* engine_;
  const int device_;
  absl::Mutex mu_;  // one Join / Receive at a time
  std::shared_ptr<weights::NcclComm> comm_ ABSL_GUARDED_BY(mu_);  // the group joined (null: none)
  std::string fingerprint_ ABSL_GUARDED_BY(mu_);                  // the learner's, at Join
  int64_t num_params_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace zerorl::rollout
