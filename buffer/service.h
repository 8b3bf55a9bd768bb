// BufferServiceImpl: the gRPC face of a TrajectoryStore. Each handler validates
// nothing itself beyond what the store does, and maps the store's absl::Status
// once (common/status.h). Backup and Compact are admin calls (bearer token).
// Tail streams every matching trajectory once, in arrival order, until the
// client cancels or the server shuts down.
#pragma once

#include <memory>

#include "buffer/trajectory_store.h"
#include "common/auth.h"
#include "zerorl/v1/buffer.grpc.pb.h"

namespace zerorl::buffer {

class BufferServiceImpl final : public zerorl::v1::BufferService::Service {
 public:
  // `store` must outlive the service; `auth` is never null.
  BufferServiceImpl(TrajectoryStore* store, std::shared_ptr<const AdminAuth> auth)
      : store_(store), auth_(std::move(auth)) {}

  grpc::Status Append(grpc::ServerContext*, const zerorl::v1::AppendRequest*, zerorl::v1::AppendResponse*) override;
  grpc::Status Lease(grpc::ServerContext*, const zerorl::v1::LeaseRequest*, zerorl::v1::LeaseResponse*) override;
  grpc::Status Ack(grpc::ServerContext*, const zerorl::v1::AckRequest*, zerorl::v1::AckResponse*) override;
  grpc::Status ListTrajectories(grpc::ServerContext*, const zerorl::v1::ListTrajectoriesRequest*,
                                zerorl::v1::ListTrajectoriesResponse*) override;
  grpc::Status GetTrajectory(grpc::ServerContext*, const zerorl::v1::GetTrajectoryRequest*,
                             zerorl::v1::Trajectory*) override;
  grpc::Status Tail(grpc::ServerContext*, const zerorl::v1::TailRequest*,
                    grpc::ServerWriter<zerorl::v1::Trajectory>*) override;
  grpc::Status GetStepStats(grpc::ServerContext*, const zerorl::v1::StepStatsRequest*,
                            zerorl::v1::StepStatsResponse*) override;
  grpc::Status ListRuns(grpc::ServerContext*, const zerorl::v1::ListRunsRequest*,
                        zerorl::v1::ListRunsResponse*) override;
  grpc::Status Backup(grpc::ServerContext*, const zerorl::v1::BackupRequest*, zerorl::v1::BackupResponse*) override;
  grpc::Status Compact(grpc::ServerContext*, const zerorl::v1::CompactRequest*,
                       zerorl::v1::CompactResponse*) override;

 private:
  TrajectoryStore* store_;
  std::shared_ptr<const AdminAuth> auth_;
};

}  // namespace zerorl::buffer
