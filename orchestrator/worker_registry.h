// WorkerRegistry: the orchestrator's view of its rollout and reward workers
// (and the buffer and learner, for listing): address, role, version, health,
// last heartbeat, calls in flight.
//
// Workers enter from the config (rollout.workers, reward.workers, ...) or by
// calling RegisterWorker; they report through Heartbeat, and the orchestrator
// also probes each one every heartbeat period (grpc.health.v1 Check, plus the
// serving policy / spec version for rollout / reward workers). A worker whose
// call fails is marked unhealthy at once and gets no new work until a probe or
// heartbeat succeeds again. Acquire picks the healthy worker with the fewest
// calls in flight (ties: round robin). Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <grpcpp/channel.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "zerorl/v1/orchestrator.pb.h"

namespace zerorl {

using ChannelFactory = std::function<std::shared_ptr<grpc::Channel>(const std::string& address)>;

struct WorkerHandle {
  std::string id;
  std::string address;
  std::shared_ptr<grpc::Channel> channel;
};

class WorkerRegistry {
 public:
  explicit WorkerRegistry(ChannelFactory channels);

  // Adds a worker, or updates the one with the same id (or, without an id, the
  // same role and address). Returns it with its id ("rollout-0", ...).
  zerorl::v1::WorkerInfo Register(zerorl::v1::WorkerInfo info);
  // Records a heartbeat (healthy again, version); unknown workers are registered.
  void Heartbeat(const zerorl::v1::WorkerInfo& info);
  std::vector<zerorl::v1::WorkerInfo> List() const;
  int CountHealthy(zerorl::v1::WorkerRole role) const;
  std::vector<std::string> Addresses(zerorl::v1::WorkerRole role) const;

  // A worker of `role` for one call, not in `exclude`: healthy ones first, then
  // (all being unhealthy) any other. nullopt when none is left. Every Acquire
  // must be paired with Release.
  std::optional<WorkerHandle> Acquire(zerorl::v1::WorkerRole role, const std::set<std::string>& exclude = {});
  // Ends a call; ok=false marks the worker unhealthy.
  void Release(const std::string& id, bool ok);

  // Probes every worker once (deadline `timeout` each), updating health,
  // version and last heartbeat.
  void ProbeAll(std::chrono::milliseconds timeout);

 private:
  struct Entry {
    zerorl::v1::WorkerInfo info;
    std::shared_ptr<grpc::Channel> channel;
  };
  ChannelFactory channels_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> workers_ ABSL_GUARDED_BY(mu_);
  std::map<int, int> next_index_ ABSL_GUARDED_BY(mu_);   // per role, for ids
  uint64_t round_robin_ ABSL_GUARDED_BY(mu_) = 0;
};

int64_t NowUnixMs();

}  // namespace zerorl
