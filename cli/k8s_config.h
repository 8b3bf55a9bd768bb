// The run config as the pods see it, and its YAML for the ConfigMap.
//
// InClusterConfig rewrites a finalized RunConfig for Kubernetes: state under
// the pod's volume (/var/lib/zerorl), the actors' addresses as service DNS
// names, the admin and internal tokens and reward spec at their mount paths, the plaintext
// health port for probes. Everything else (model, dataset, GRPO...) is kept;
// relative paths resolve against the image's working directory (/opt/zerorl).
//
// ConfigOverridesYaml writes only the fields that differ from
// DefaultRunConfig(), so the ConfigMap stays short and reads as "what this
// run changes"; loading it with LoadRunConfig gives back the same message.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "zerorl/v1/config.pb.h"

namespace zerorl {

// Mount points and paths inside every zerorl pod.
inline constexpr char kPodConfigDir[] = "/etc/zerorl/config";  // ConfigMap zerorl-config
inline constexpr char kPodConfigFile[] = "/etc/zerorl/config/run.yaml";
inline constexpr char kPodRewardDir[] = "/etc/zerorl/reward";  // ConfigMap zerorl-reward-spec (a directory
inline constexpr char kPodRewardFile[] = "/etc/zerorl/reward/spec.yaml";  // mount, so edits propagate)
inline constexpr char kPodTokenDir[] = "/etc/zerorl/token";  // Secret zerorl-admin-token
inline constexpr char kPodTokenFile[] = "/etc/zerorl/token/token";
inline constexpr char kPodInternalTokenDir[] = "/etc/zerorl/internal";  // Secret zerorl-internal-token
inline constexpr char kPodInternalTokenFile[] = "/etc/zerorl/internal/token";
inline constexpr char kPodStateDir[] = "/var/lib/zerorl";  // PVC (buffer, learner, orchestrator) or emptyDir
inline constexpr char kPodDataDir[] = "/data";             // kubernetes.data_claim, read-only
inline constexpr char kPodTmpSize[] = "1Gi";  // sizeLimit of every pod's /tmp emptyDir
inline constexpr int kDefaultHealthPort = 8081;

// "<service>.<namespace>.svc.<cluster domain>".
std::string ServiceHost(const zerorl::v1::RunConfig& config, const std::string& service);

// The config the pods load. `has_spec_file` says whether the reward spec goes
// to the reward-spec ConfigMap (then reward.spec_path points at its mount).
zerorl::v1::RunConfig InClusterConfig(const zerorl::v1::RunConfig& config, bool has_spec_file);

// YAML of the fields of `config` that differ from DefaultRunConfig(). Checks
// that it loads back to `config` exactly; INTERNAL if it would not.
absl::StatusOr<std::string> ConfigOverridesYaml(const zerorl::v1::RunConfig& config);

}  // namespace zerorl
