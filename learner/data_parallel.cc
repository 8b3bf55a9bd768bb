// Devices, replicas and reducers of the data-parallel learner (see data_parallel.h).
#include "learner/data_parallel.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/status.h"
#include "model/policy_loader.h"

namespace zerorl::learner {

LearnerDevices LearnerDevicesFromConfig(const zerorl::v1::RunConfig& config) {
  LearnerDevices d;
  const auto& dp = config.learner().data_parallel_devices();
  if (dp.empty()) {
    d.devices.push_back(config.model().device());
    d.keys.push_back("model.device");
    return d;
  }
  for (int i = 0; i < dp.size(); ++i) {
    d.devices.push_back(dp[i]);
    d.keys.push_back(absl::StrCat("learner.data_parallel_devices[", i, "]"));
  }
  return d;
}

absl::StatusOr<PolicyReplicas> LoadPolicyReplicas(const zerorl::v1::RunConfig& config) {
  const LearnerDevices ld = LearnerDevicesFromConfig(config);
  const int R = static_cast<int>(ld.devices.size());
  std::vector<model::ops::Backend*> backends;
  std::vector<int> cuda;  // device index per rank (-1: cpu)
  for (int r = 0; r < R; ++r) {
    ZRL_ASSIGN_OR_RETURN(const int index, ParseDevice(ld.devices[r], ld.keys[r]));
    for (int c : cuda)
      if (index >= 0 && c == index)
        return absl::InvalidArgumentError(
            absl::StrCat(ld.keys[r], ": cuda:", index, " is listed twice (one replica per GPU)"));
    if (r > 0 && (index < 0) != (cuda[0] < 0))
      return absl::InvalidArgumentError(
          absl::StrCat(ld.keys[r], ": \"", ld.devices[r], "\" mixes cpu and cuda replicas"));
    cuda.push_back(index);
    ZRL_ASSIGN_OR_RETURN(model::ops::Backend * b, model::BackendForDevice(ld.devices[r], ld.keys[r]));
    backends.push_back(b);
  }
  PolicyReplicas p;
  ZRL_ASSIGN_OR_RETURN(auto rank0, model::LoadPolicyModelOn(config.model(), backends[0]));
  p.models.push_back(std::move(rank0));
  for (int r = 1; r < R; ++r) {
    auto m = model::Model::Create(p.models[0]->config(), 0, backends[r]);
    if (!m.ok()) return Annotate(m.status(), absl::StrCat("replica on ", ld.keys[r]));
    p.models.push_back(std::move(*m));
  }
  if (R == 1) return p;
  if (cuda[0] >= 0 && HaveNcclGradReducer()) {
    auto reducers = NewNcclGradReducers(cuda);
    if (!reducers.ok()) return Annotate(reducers.status(), "learner.data_parallel_devices (NCCL)");
    p.reducers = std::move(*reducers);
  } else {
    p.reducers = NewHostGradReducers(backends);
  }
  return p;
}

absl::Status RunOnRanks(int n, const std::function<absl::Status(int rank)>& fn) {
  if (n == 1) return fn(0);
  std::vector<absl::Status> st(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) threads.emplace_back([&, r] { st[r] = fn(r); });
  for (auto& t : threads) t.join();
  for (const absl::Status& s : st)
    if (!s.ok()) return s;
  return absl::OkStatus();
}

}  // namespace zerorl::learner
