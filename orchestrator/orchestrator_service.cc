// OrchestratorService handlers (see orchestrator_service.h).
#include "orchestrator/orchestrator_service.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/auth.h"
#include "common/status.h"

namespace zerorl {

using grpc::ServerContext;
using grpc::Status;

OrchestratorServiceImpl::OrchestratorServiceImpl(std::shared_ptr<const AdminAuth> auth, WorkerRegistry* registry,
                                                 RunStarter starter)
    : auth_(std::move(auth)), registry_(registry), starter_(std::move(starter)) {}

void OrchestratorServiceImpl::AddRun(std::shared_ptr<RunController> run) {
  absl::MutexLock l(&mu_);
  runs_[run->config().run_id()] = std::move(run);
}

std::vector<std::shared_ptr<RunController>> OrchestratorServiceImpl::Runs() const {
  absl::MutexLock l(&mu_);
  std::vector<std::shared_ptr<RunController>> out;
  for (const auto& [id, r] : runs_) out.push_back(r);
  return out;
}

absl::StatusOr<std::shared_ptr<RunController>> OrchestratorServiceImpl::Find(const std::string& run_id) const {
  absl::MutexLock l(&mu_);
  if (run_id.empty() && runs_.size() == 1) return runs_.begin()->second;
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return absl::NotFoundError(absl::StrCat("no run \"", run_id, "\""));
  return it->second;
}

Status OrchestratorServiceImpl::ListRuns(ServerContext* ctx, const zerorl::v1::ListRunInfosRequest*,
                                         zerorl::v1::RunList* out) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  for (const auto& r : Runs()) *out->add_runs() = r->Info();
  return Status::OK;
}

Status OrchestratorServiceImpl::GetRun(ServerContext* ctx, const zerorl::v1::RunRef* req, zerorl::v1::RunInfo* out) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  auto r = Find(req->run_id());
  if (!r.ok()) return ToGrpcStatus(r.status());
  *out = (*r)->Info();
  return Status::OK;
}

Status OrchestratorServiceImpl::CreateRun(ServerContext* ctx, const zerorl::v1::CreateRunRequest* req,
                                          zerorl::v1::RunInfo* out) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  if (auto s = auth_->CheckAdmin(ctx); !s.ok()) return ToGrpcStatus(s);
  if (!starter_) {
    return ToGrpcStatus(absl::FailedPreconditionError(
        "this orchestrator drives one run (zerorl run); start `zerorl serve orchestrator` to create runs"));
  }
  absl::StatusOr<zerorl::v1::RunConfig> config;
  if (!req->yaml().empty()) {
    config = ParseRunConfig(req->yaml(), "CreateRun.yaml");
  } else {
    zerorl::v1::RunConfig c = DefaultRunConfig();
    c.MergeFrom(req->config());
    absl::Status s = FinalizeRunConfig(&c);
    config = s.ok() ? absl::StatusOr<zerorl::v1::RunConfig>(c) : s;
  }
  if (!config.ok()) return ToGrpcStatus(config.status());
  {
    absl::MutexLock l(&mu_);
    if (runs_.count(config->run_id())) {
      return ToGrpcStatus(absl::AlreadyExistsError(absl::StrCat("run \"", config->run_id(), "\" exists")));
    }
  }
  auto run = starter_(*config);
  if (!run.ok()) return ToGrpcStatus(run.status());
  AddRun(*run);
  if (req->start()) {
    (*run)->StartInBackground();
  }
  *out = (*run)->Info();
  return Status::OK;
}

Status OrchestratorServiceImpl::PauseRun(ServerContext* ctx, const zerorl::v1::RunRef* req, zerorl::v1::RunInfo* out) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  if (auto s = auth_->CheckAdmin(ctx); !s.ok()) return ToGrpcStatus(s);
  auto r = Find(req->run_id());
  if (!r.ok()) return ToGrpcStatus(r.status());
  (*r)->Pause();
  *out = (*r)->Info();
  return Status::OK;
}

Status OrchestratorServiceImpl::ResumeRun(ServerContext* ctx, const zerorl::v1::RunRef* req,
                                          zerorl::v1::RunInfo* out) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  if (auto s = auth_->CheckAdmin(ctx); !s.ok()) return ToGrpcStatus(s);
  auto r = Find(req->run_id());
  if (!r.ok()) return ToGrpcStatus(r.status());
  (*r)->Resume();
  *out = (*r)->Info();
  return Status::OK;
}

Status OrchestratorServiceImpl::StopRun(ServerContext* ctx, const zerorl::v1::RunRef* req, zerorl::v1::RunInfo* out) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  if (auto s = auth_->CheckAdmin(ctx); !s.ok()) return ToGrpcStatus(s);
  auto r = Find(req->run_id());
  if (!r.ok()) return ToGrpcStatus(r.status());
  (*r)->RequestStop();
  *out = (*r)->Info();
  return Status::OK;
}

Status OrchestratorServiceImpl::RegisterWorker(ServerContext* ctx, const zerorl::v1::WorkerInfo* req,
                                               zerorl::v1::WorkerInfo* out) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  if (req->address().empty() || req->role() == zerorl::v1::WORKER_ROLE_UNSPECIFIED) {
    return ToGrpcStatus(absl::InvalidArgumentError("RegisterWorker needs an address and a role"));
  }
  *out = registry_->Register(*req);
  return Status::OK;
}

Status OrchestratorServiceImpl::Heartbeat(ServerContext* ctx, const zerorl::v1::WorkerInfo* req,
                                          zerorl::v1::HeartbeatResponse* out) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  if (req->id().empty() && req->address().empty()) {
    return ToGrpcStatus(absl::InvalidArgumentError("Heartbeat needs the worker's id or address"));
  }
  registry_->Heartbeat(*req);
  for (const auto& r : Runs()) {
    const auto info = r->Info();
    out->set_policy_version(std::max(out->policy_version(), info.policy_version()));
    out->set_reward_spec_version(std::max(out->reward_spec_version(), info.reward_spec_version()));
  }
  return Status::OK;
}

Status OrchestratorServiceImpl::ListWorkers(ServerContext* ctx, const zerorl::v1::ListWorkersRequest*,
                                            zerorl::v1::WorkerList* out) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  for (const auto& w : registry_->List()) *out->add_workers() = w;
  return Status::OK;
}

Status OrchestratorServiceImpl::GetMetrics(ServerContext* ctx, const zerorl::v1::GetMetricsRequest* req,
                                           zerorl::v1::MetricsList* out) {
  if (auto s = CheckCallAccess(ctx); !s.ok()) return ToGrpcStatus(s);
  auto r = Find(req->run_id());
  if (!r.ok()) return ToGrpcStatus(r.status());
  for (const auto& m : (*r)->Metrics(req->last())) *out->add_steps() = m;
  return Status::OK;
}

}  // namespace zerorl
