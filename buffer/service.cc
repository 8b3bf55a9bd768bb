// BufferServiceImpl handlers (see service.h).
#include "buffer/service.h"

#include "common/auth.h"
#include "common/status.h"

namespace zerorl::buffer {

namespace {
// Copies a StatusOr's value into `out` and maps the status.
template <typename T, typename M>
grpc::Status Reply(absl::StatusOr<T> r, M* out) {
  if (!r.ok()) return ToGrpcStatus(r.status());
  *out = std::move(r).value();
  return grpc::Status::OK;
}
inline constexpr int kTailBatch = 256;
inline constexpr absl::Duration kTailPoll = absl::Milliseconds(200);  // cancellation check period
}  // namespace

grpc::Status BufferServiceImpl::Append(grpc::ServerContext* ctx, const zerorl::v1::AppendRequest* req,
                                       zerorl::v1::AppendResponse* out) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  return Reply(store_->Append(*req), out);
}

grpc::Status BufferServiceImpl::Lease(grpc::ServerContext* ctx, const zerorl::v1::LeaseRequest* req,
                                      zerorl::v1::LeaseResponse* out) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  return Reply(store_->Lease(*req), out);
}

grpc::Status BufferServiceImpl::Ack(grpc::ServerContext* ctx, const zerorl::v1::AckRequest* req,
                                    zerorl::v1::AckResponse* out) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  return Reply(store_->Ack(*req), out);
}

grpc::Status BufferServiceImpl::ListTrajectories(grpc::ServerContext* ctx, const zerorl::v1::ListTrajectoriesRequest* req,
                                                 zerorl::v1::ListTrajectoriesResponse* out) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  return Reply(store_->List(*req), out);
}

grpc::Status BufferServiceImpl::GetTrajectory(grpc::ServerContext* ctx, const zerorl::v1::GetTrajectoryRequest* req,
                                              zerorl::v1::Trajectory* out) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  return Reply(store_->Get(req->id()), out);
}

grpc::Status BufferServiceImpl::Tail(grpc::ServerContext* ctx, const zerorl::v1::TailRequest* req,
                                     grpc::ServerWriter<zerorl::v1::Trajectory>* writer) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  uint64_t cursor = req->from_start() ? 0 : store_->NextArrival();
  while (!ctx->IsCancelled()) {
    auto batch = store_->ReadArrivals(&cursor, req->filter(), kTailBatch);
    if (!batch.ok()) return ToGrpcStatus(batch.status());
    for (const auto& t : *batch) {
      if (!writer->Write(t)) return grpc::Status::OK;  // client went away
    }
    // Nothing new: wait up to one poll period, then re-check cancellation.
    if (batch->empty() && !store_->WaitForArrivals(cursor, kTailPoll) && store_->closing()) break;
  }
  return grpc::Status::OK;
}

grpc::Status BufferServiceImpl::GetStepStats(grpc::ServerContext* ctx, const zerorl::v1::StepStatsRequest* req,
                                             zerorl::v1::StepStatsResponse* out) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  return Reply(store_->StepStats(*req), out);
}

grpc::Status BufferServiceImpl::ListRuns(grpc::ServerContext* ctx, const zerorl::v1::ListRunsRequest*,
                                         zerorl::v1::ListRunsResponse* out) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  *out = store_->ListRuns();
  return grpc::Status::OK;
}

grpc::Status BufferServiceImpl::Backup(grpc::ServerContext* ctx, const zerorl::v1::BackupRequest* req,
                                       zerorl::v1::BackupResponse* out) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  if (auto s = auth_->CheckAdmin(ctx); !s.ok()) return ToGrpcStatus(s);
  return Reply(store_->Backup(req->dir()), out);
}

grpc::Status BufferServiceImpl::Compact(grpc::ServerContext* ctx, const zerorl::v1::CompactRequest* req,
                                        zerorl::v1::CompactResponse* out) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  if (auto s = auth_->CheckAdmin(ctx); !s.ok()) return ToGrpcStatus(s);
  return Reply(store_->Compact(req->run_id()), out);
}

}  // namespace zerorl::buffer
