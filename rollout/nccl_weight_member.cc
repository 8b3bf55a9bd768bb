// NcclWeightMember: join validation, the worker's communicator, and the
// broadcast into a spare model (see nccl_weight_member.h). Everything that
// touches NCCL is compiled only with ZERORL_HAVE_NCCL; without it the checks
// still run and a valid request is answered UNIMPLEMENTED.
#include "rollout/nccl_weight_member.h"

#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"
#include "weights/nccl_weight_deadline.h"
#include "weights/weight_group.h"

#ifdef ZERORL_HAVE_NCCL
#include "weights/nccl_comm.h"
#include "model/ops/cuda/cuda_backend.h"
#endif

namespace zerorl::rollout {

using weights::ModelConfigFingerprint;
using weights::NcclWeightTransportBuilt;
using weights::RunWithDeadline;

NcclWeightMember::NcclWeightMember(GenerationEngine* engine, int device) : engine_(engine), device_(device) {}

NcclWeightMember::~NcclWeightMember() = default;

absl::Status NcclWeightMember::Validate(const zerorl::v1::JoinWeightGroupRequest& r) const {
  if (r.unique_id().size() != kNcclUniqueIdBytes)
    return absl::InvalidArgumentError(absl::StrCat("JoinWeightGroup: unique_id must be ", kNcclUniqueIdBytes,
                                                   " bytes (a NCCL unique id), got ", r.unique_id().size()));
  if (r.nranks() < 2)
    return absl::InvalidArgumentError(
        absl::StrCat("JoinWeightGroup: nranks must be >= 2 (the learner and a worker), got ", r.nranks()));
  if (r.rank() < 1 || r.rank() >= r.nranks())
    return absl::InvalidArgumentError(absl::StrCat("JoinWeightGroup: rank must be in 1..", r.nranks() - 1,
                                                   " (rank 0 is the learner), got ", r.rank()));
  if (r.timeout_ms() < 0)
    return absl::InvalidArgumentError(absl::StrCat("JoinWeightGroup: timeout_ms must be >= 0, got ", r.timeout_ms()));
  const std::string mine = ModelConfigFingerprint(engine_->config());
  if (r.config_fingerprint() != mine)
    return absl::FailedPreconditionError(absl::StrCat("JoinWeightGroup: model config fingerprint ",
                                                      r.config_fingerprint(), " differs from this worker's ", mine,
                                                      " (different model config)"));
  if (r.num_params() != engine_->num_params())
    return absl::FailedPreconditionError(absl::StrCat("JoinWeightGroup: the learner has ", r.num_params(),
                                                      " parameters, this worker's model ", engine_->num_params()));
  if (engine_->weights_on_host())
    return absl::FailedPreconditionError(
        "JoinWeightGroup: this worker's model is in host memory (CPU backend); NCCL needs it on a GPU");
  if (!NcclWeightTransportBuilt())
    return absl::UnimplementedError("JoinWeightGroup: this worker was built without NCCL");
#ifdef ZERORL_HAVE_NCCL
  ZRL_RETURN_IF_ERROR(model::ops::CudaDeviceStatus(device_));
#endif
  return absl::OkStatus();
}

absl::StatusOr<int> NcclWeightMember::Join(const zerorl::v1::JoinWeightGroupRequest& request) {
  absl::MutexLock lk(&mu_);
  ZRL_RETURN_IF_ERROR(Validate(request));
  if (request.check_only()) return device_;
#ifdef ZERORL_HAVE_NCCL
  comm_.reset();  // leaving the previous group, if any
  const std::chrono::milliseconds timeout(request.timeout_ms() > 0 ? request.timeout_ms() : 60000);
  const std::string id = request.unique_id();
  const int nranks = request.nranks(), rank = request.rank(), device = device_;
  auto made = RunWithDeadline<absl::StatusOr<std::shared_ptr<weights::NcclComm>>>(
      [id, nranks, rank, device]() -> absl::StatusOr<std::shared_ptr<weights::NcclComm>> {
        ZRL_ASSIGN_OR_RETURN(std::unique_ptr<weights::NcclComm> c, weights::NcclComm::Create(id, nranks, rank, device));
        return std::shared_ptr<weights::NcclComm>(std::move(c));
      },
      timeout);
  if (!made)
    return absl::DeadlineExceededError(absl::StrCat("JoinWeightGroup: the other ", nranks - 1,
                                                    " ranks did not all join within ", timeout.count(), " ms"));
  if (!made->ok()) return Annotate(made->status(), "JoinWeightGroup");
  comm_ = std::move(**made);
  fingerprint_ = request.config_fingerprint();
  num_params_ = request.num_params();
  ZLOG(INFO) << "joined the learner's NCCL weight group as rank " << rank << " of " << nranks << " on device "
             << device;
  return device_;
#else
  return absl::UnimplementedError("JoinWeightGroup: this worker was built without NCCL");
#endif
}

absl::StatusOr<UpdateResult> NcclWeightMember::Receive(const zerorl::v1::ReceiveWeightsNcclRequest& request) {
  absl::MutexLock lk(&mu_);
  if (!comm_) return absl::FailedPreconditionError("ReceiveWeightsNccl: no NCCL weight group joined");
  if (request.config_fingerprint() != fingerprint_ || request.num_params() != num_params_)
    return absl::FailedPreconditionError(absl::StrCat(
        "ReceiveWeightsNccl: the learner sends ", request.num_params(), " parameters with fingerprint ",
        request.config_fingerprint(), ", the group was joined with ", num_params_, " and ", fingerprint_));
#ifdef ZERORL_HAVE_NCCL
  weights::NcclComm* comm = comm_.get();
  auto r = engine_->ReceiveWeightsInPlace(request.version(), [&](model::Model* spare) -> absl::Status {
    if (spare->on_host() || spare->NumParams() != request.num_params())
      return absl::FailedPreconditionError(
          absl::StrCat("ReceiveWeightsNccl: the spare model (", spare->NumParams(), " parameters, ",
                       spare->on_host() ? "host" : "device", " memory) cannot take the broadcast"));
    return comm->Broadcast(spare->param_data(), spare->NumParams(), /*root=*/0);
  });
  // A failed broadcast leaves the communicator unusable: leave the group so
  // the learner forms a new one (or streams) next time.
  if (!r.ok()) comm_.reset();
  return r;
#else
  return absl::UnimplementedError("ReceiveWeightsNccl: this worker was built without NCCL");
#endif
}

}  // namespace zerorl::rollout
