// The Kubernetes objects of one zerorl run, rendered from its RunConfig.
//
// What `zerorl k8s render` prints and what k8s/base plus its overlays spell
// out by hand (tests/k8s checks that they agree). Per run, in namespace
// kubernetes.namespace:
//   Namespace (Pod Security "restricted" enforced)
//   ConfigMap zerorl-config {run.yaml}; ConfigMap zerorl-reward-spec {spec.yaml}
//     when the run has a reward spec (mounted as a directory: edits hot-swap it)
//   Secret zerorl-admin-token {token}: referenced, never created here
//   Secret zerorl-internal-token {token}: the actors' shared secret
//     (server.internal_token_file; common/auth.h), mounted in every pod;
//     rendered when an internal token is given, else only referenced
//   orchestrator: Deployment (Recreate) + PVC orchestrator-state + Service
//   buffer, learner: StatefulSet + volumeClaimTemplate + headless Service
//   rollout: StatefulSet ×rollout_replicas (rollout_gpus each) + headless Service
//   reward: StatefulSet ×reward_replicas (CPU) + headless Service
//     (StatefulSets so that run.yaml can list every rollout and reward pod by
//     its stable DNS name: the orchestrator's workers come from the config)
//   NetworkPolicy reward-isolation: reward pods get no egress at all
//   PodDisruptionBudgets for rollout and reward (maxUnavailable 1)
// Every pod: non-root (uid 10001), no privilege escalation, all capabilities
// dropped, seccomp RuntimeDefault, read-only root filesystem, gRPC probes
// (startup, readiness, liveness) on the plaintext health port.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "zerorl/v1/config.pb.h"

namespace zerorl {

inline constexpr int kPodUser = 10001;  // uid and gid of the image's non-root user (Dockerfile)

// INVALID_ARGUMENT naming the key when kubernetes.* (or run_id, which becomes
// a label) cannot make valid objects: bad names, quantities, replica counts.
absl::Status ValidateKubernetesConfig(const zerorl::v1::RunConfig& config);

// The objects, in apply order. `config` is the finalized user config;
// `reward_spec_yaml` is the reward spec text for the ConfigMap ("" = none);
// `internal_token` the value of Secret zerorl-internal-token ("" = the Secret
// is referenced, not rendered: the operator creates it).
absl::StatusOr<std::vector<nlohmann::ordered_json>> RenderK8sObjects(const zerorl::v1::RunConfig& config,
                                                                     const std::string& reward_spec_yaml,
                                                                     const std::string& internal_token = "");

}  // namespace zerorl
