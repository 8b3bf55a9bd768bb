// Worker registry (see worker_registry.h).
#include "orchestrator/worker_registry.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/server.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "zerorl/v1/reward.grpc.pb.h"
#include "zerorl/v1/rollout.grpc.pb.h"

namespace zerorl {

using zerorl::v1::WorkerInfo;
using zerorl::v1::WorkerRole;

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {
std::string RoleName(WorkerRole role) {
  std::string n = zerorl::v1::WorkerRole_Name(role);
  const std::string prefix = "WORKER_ROLE_";
  if (n.rfind(prefix, 0) == 0) n = n.substr(prefix.size());
  return absl::AsciiStrToLower(n);
}
}  // namespace

WorkerRegistry::WorkerRegistry(ChannelFactory channels) : channels_(std::move(channels)) {}

WorkerInfo WorkerRegistry::Register(WorkerInfo info) {
  absl::MutexLock l(&mu_);
  if (info.id().empty()) {
    for (const auto& [id, e] : workers_) {
      if (e.info.role() == info.role() && e.info.address() == info.address()) info.set_id(id);
    }
  }
  if (info.id().empty()) info.set_id(absl::StrCat(RoleName(info.role()), "-", next_index_[info.role()]++));
  auto it = workers_.find(info.id());
  if (it == workers_.end() || it->second.info.address() != info.address()) {
    Entry e;
    e.channel = channels_(info.address());
    e.info = info;
    e.info.set_healthy(true);
    workers_[info.id()] = std::move(e);
  } else {
    it->second.info.set_version(info.version());
    it->second.info.set_healthy(true);
  }
  workers_[info.id()].info.set_last_heartbeat_unix_ms(NowUnixMs());
  return workers_[info.id()].info;
}

void WorkerRegistry::Heartbeat(const WorkerInfo& info) {
  {
    absl::MutexLock l(&mu_);
    auto it = workers_.find(info.id());
    if (it != workers_.end()) {
      it->second.info.set_healthy(true);
      it->second.info.set_version(info.version());
      it->second.info.set_last_heartbeat_unix_ms(NowUnixMs());
      return;
    }
  }
  Register(info);
}

std::vector<WorkerInfo> WorkerRegistry::List() const {
  absl::MutexLock l(&mu_);
  std::vector<WorkerInfo> out;
  for (const auto& [id, e] : workers_) out.push_back(e.info);
  return out;
}

int WorkerRegistry::CountHealthy(WorkerRole role) const {
  absl::MutexLock l(&mu_);
  int n = 0;
  for (const auto& [id, e] : workers_) n += e.info.role() == role && e.info.healthy();
  return n;
}

std::vector<std::string> WorkerRegistry::Addresses(WorkerRole role) const {
  absl::MutexLock l(&mu_);
  std::vector<std::string> out;
  for (const auto& [id, e] : workers_) {
    if (e.info.role() == role) out.push_back(e.info.address());
  }
  return out;
}

std::optional<WorkerHandle> WorkerRegistry::Acquire(WorkerRole role, const std::set<std::string>& exclude) {
  absl::MutexLock l(&mu_);
  std::vector<Entry*> candidates;
  for (auto& [id, e] : workers_) {
    if (e.info.role() == role && !exclude.count(id)) candidates.push_back(&e);
  }
  if (candidates.empty()) return std::nullopt;
  const size_t start = round_robin_++ % candidates.size();
  Entry* best = nullptr;
  for (size_t k = 0; k < candidates.size(); ++k) {
    Entry* e = candidates[(start + k) % candidates.size()];
    if (best == nullptr) {
      best = e;
      continue;
    }
    const bool better_health = e->info.healthy() && !best->info.healthy();
    const bool same_health = e->info.healthy() == best->info.healthy();
    if (better_health || (same_health && e->info.in_flight() < best->info.in_flight())) best = e;
  }
  best->info.set_in_flight(best->info.in_flight() + 1);
  return WorkerHandle{best->info.id(), best->info.address(), best->channel};
}

void WorkerRegistry::Release(const std::string& id, bool ok) {
  absl::MutexLock l(&mu_);
  auto it = workers_.find(id);
  if (it == workers_.end()) return;
  it->second.info.set_in_flight(std::max<int64_t>(0, it->second.info.in_flight() - 1));
  if (!ok) it->second.info.set_healthy(false);
}

void WorkerRegistry::ProbeAll(std::chrono::milliseconds timeout) {
  std::vector<std::pair<WorkerInfo, std::shared_ptr<grpc::Channel>>> snapshot;
  {
    absl::MutexLock l(&mu_);
    for (const auto& [id, e] : workers_) snapshot.push_back({e.info, e.channel});
  }
  for (auto& [info, channel] : snapshot) {
    bool ok = false;
    int64_t version = info.version();
    if (info.role() == zerorl::v1::WORKER_ROLE_ROLLOUT) {
      auto ctx = ContextWithDeadline(timeout);
      zerorl::v1::PolicyVersion v;
      ok = zerorl::v1::RolloutService::NewStub(channel)
               ->GetPolicyVersion(ctx.get(), zerorl::v1::GetPolicyVersionRequest(), &v)
               .ok();
      if (ok) version = v.version();
    } else if (info.role() == zerorl::v1::WORKER_ROLE_REWARD) {
      auto ctx = ContextWithDeadline(timeout);
      zerorl::v1::RewardSpecVersion v;
      ok = zerorl::v1::RewardService::NewStub(channel)
               ->GetRewardSpec(ctx.get(), zerorl::v1::GetRewardSpecRequest(), &v)
               .ok();
      if (ok) version = v.version();
    } else {
      auto ctx = ContextWithDeadline(timeout);
      grpc::health::v1::HealthCheckResponse resp;
      ok = grpc::health::v1::Health::NewStub(channel)
               ->Check(ctx.get(), grpc::health::v1::HealthCheckRequest(), &resp)
               .ok();
    }
    absl::MutexLock l(&mu_);
    auto it = workers_.find(info.id());
    if (it == workers_.end()) continue;
    it->second.info.set_healthy(ok);
    if (ok) {
      it->second.info.set_version(version);
      it->second.info.set_last_heartbeat_unix_ms(NowUnixMs());
    }
  }
}

}  // namespace zerorl
