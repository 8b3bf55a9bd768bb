// OrchestratorServiceImpl: the gRPC face of the orchestrator (orchestrator.proto)
// over the runs it drives and its worker registry.
//   ListRuns / GetRun / GetMetrics   read-only, anyone
//   CreateRun / PauseRun / ResumeRun / StopRun   admin (bearer token)
//   RegisterWorker / Heartbeat / ListWorkers     the worker registry
// CreateRun needs a RunStarter (serve mode); `zerorl run` drives exactly one
// run and answers FAILED_PRECONDITION to it. Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/auth.h"
#include "orchestrator/run_controller.h"
#include "orchestrator/worker_registry.h"
#include "zerorl/v1/orchestrator.grpc.pb.h"

namespace zerorl {

class OrchestratorServiceImpl final : public zerorl::v1::OrchestratorService::Service {
 public:
  // Builds, prepares and starts a controller for a config (serve mode).
  using RunStarter = std::function<absl::StatusOr<std::shared_ptr<RunController>>(const zerorl::v1::RunConfig&)>;

  OrchestratorServiceImpl(std::shared_ptr<const AdminAuth> auth, WorkerRegistry* registry, RunStarter starter);

  void AddRun(std::shared_ptr<RunController> run);
  std::vector<std::shared_ptr<RunController>> Runs() const;

  grpc::Status ListRuns(grpc::ServerContext*, const zerorl::v1::ListRunInfosRequest*, zerorl::v1::RunList*) override;
  grpc::Status GetRun(grpc::ServerContext*, const zerorl::v1::RunRef*, zerorl::v1::RunInfo*) override;
  grpc::Status CreateRun(grpc::ServerContext*, const zerorl::v1::CreateRunRequest*, zerorl::v1::RunInfo*) override;
  grpc::Status PauseRun(grpc::ServerContext*, const zerorl::v1::RunRef*, zerorl::v1::RunInfo*) override;
  grpc::Status ResumeRun(grpc::ServerContext*, const zerorl::v1::RunRef*, zerorl::v1::RunInfo*) override;
  grpc::Status StopRun(grpc::ServerContext*, const zerorl::v1::RunRef*, zerorl::v1::RunInfo*) override;
  grpc::Status RegisterWorker(grpc::ServerContext*, const zerorl::v1::WorkerInfo*, zerorl::v1::WorkerInfo*) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const zerorl::v1::WorkerInfo*,
                         zerorl::v1::HeartbeatResponse*) override;
  grpc::Status ListWorkers(grpc::ServerContext*, const zerorl::v1::ListWorkersRequest*,
                           zerorl::v1::WorkerList*) override;
  grpc::Status GetMetrics(grpc::ServerContext*, const zerorl::v1::GetMetricsRequest*,
                          zerorl::v1::MetricsList*) override;

 private:
  absl::StatusOr<std::shared_ptr<RunController>> Find(const std::string& run_id) const;

  std::shared_ptr<const AdminAuth> auth_;
  WorkerRegistry* registry_;
  RunStarter starter_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<RunController>> runs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace zerorl
