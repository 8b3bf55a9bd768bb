// Kubernetes objects for one run (see k8s_render.h for the list and promises).
#include "cli/k8s_render.h"

#include <regex>

#include "absl/strings/str_cat.h"
#include "cli/k8s_config.h"

namespace zerorl {
namespace {

using nlohmann::ordered_json;
using zerorl::v1::KubernetesResources;
using zerorl::v1::RunConfig;

constexpr char kGpuResource[] = "nvidia.com/gpu";
constexpr char kTokenSecret[] = "zerorl-admin-token";
constexpr char kInternalSecret[] = "zerorl-internal-token";

enum class Workload { kDeployment, kStatefulSet };
enum class State { kEmptyDir, kClaim, kClaimTemplate };

// What differs between the five actors' pods.
struct Role {
  std::string name;
  int port = 0;
  Workload workload = Workload::kDeployment;
  State state = State::kEmptyDir;
  int replicas = 1;
  int gpus = 0;
  bool reward_spec = false;       // mounts the reward-spec ConfigMap
  bool data = false;              // mounts kubernetes.data_claim at /data
  KubernetesResources resources;  // cpu and memory after defaults
};

KubernetesResources WithDefaults(const KubernetesResources& r, const char* cpu, const char* memory) {
  KubernetesResources out = r;
  if (out.cpu().empty()) out.set_cpu(cpu);
  if (out.memory().empty()) out.set_memory(memory);
  return out;
}

std::vector<Role> Roles(const RunConfig& c, bool has_reward_spec) {
  const auto& k = c.kubernetes();
  std::vector<Role> roles(5);
  // Rollout and reward are StatefulSets too: the orchestrator lists their pods by name (k8s_config.h).
  roles[0] = {"orchestrator", c.orchestrator().listen_port(), Workload::kDeployment, State::kClaim, 1, 0,
              false, true, WithDefaults(k.orchestrator(), "500m", "1Gi")};
  roles[1] = {"buffer", c.buffer().listen_port(), Workload::kStatefulSet, State::kClaimTemplate, 1, 0,
              false, false, WithDefaults(k.buffer(), "500m", "2Gi")};
  roles[2] = {"learner", c.learner().listen_port(), Workload::kStatefulSet, State::kClaimTemplate, 1,
              k.learner_gpus(), false, true, WithDefaults(k.learner(), "2", "16Gi")};
  roles[3] = {"rollout", c.rollout().listen_port(), Workload::kStatefulSet, State::kEmptyDir,
              k.rollout_replicas(), k.rollout_gpus(), false, true, WithDefaults(k.rollout(), "2", "8Gi")};
  roles[4] = {"reward", c.reward().listen_port(), Workload::kStatefulSet, State::kEmptyDir, k.reward_replicas(),
              0, true, false, WithDefaults(k.reward(), "1", "2Gi")};
  for (Role& r : roles) {
    if (k.data_claim().empty()) r.data = false;
    if (!has_reward_spec) r.reward_spec = false;
  }
  return roles;
}

ordered_json Labels(const std::string& component) {
  return {{"app.kubernetes.io/name", "zerorl"}, {"app.kubernetes.io/component", component}};
}

ordered_json Metadata(const RunConfig& c, const std::string& name, const std::string& component) {
  ordered_json labels = Labels(component);
  labels["app.kubernetes.io/part-of"] = "zerorl";
  return {{"name", name}, {"namespace", c.kubernetes().namespace_()}, {"labels", labels}};
}

std::string StateSize(const RunConfig& c) {
  return c.kubernetes().state_size().empty() ? "10Gi" : c.kubernetes().state_size();
}

// A PVC spec: ReadWriteOnce, `size`, the configured storage class if any.
ordered_json ClaimSpec(const RunConfig& c, const std::string& size) {
  ordered_json spec = {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", size}}}}}};
  if (!c.kubernetes().storage_class().empty()) spec["storageClassName"] = c.kubernetes().storage_class();
  return spec;
}

ordered_json Probe(int health_port, int period_s, int failures) {
  return {{"grpc", {{"port", health_port}}},
          {"periodSeconds", period_s},
          {"timeoutSeconds", 5},
          {"failureThreshold", failures}};
}

ordered_json Container(const RunConfig& c, const Role& r) {
  const int health = c.server().health_port();
  // StatefulSet pods by their own stable DNS name, the orchestrator by its service.
  const bool by_pod = r.workload == Workload::kStatefulSet;
  const std::string advertise = by_pod ? absl::StrCat("$(POD_NAME).", ServiceHost(c, r.name), ":", r.port)
                                       : absl::StrCat(ServiceHost(c, r.name), ":", r.port);
  ordered_json ports = ordered_json::array();
  ports.push_back({{"name", "grpc"}, {"containerPort", r.port}, {"protocol", "TCP"}});
  ports.push_back({{"name", "health"}, {"containerPort", health}, {"protocol", "TCP"}});
  if (r.name == "orchestrator" && c.orchestrator().metrics_port() > 0) {
    ports.push_back({{"name", "metrics"}, {"containerPort", c.orchestrator().metrics_port()}, {"protocol", "TCP"}});
  }
  ordered_json requests = {{"cpu", r.resources.cpu()}, {"memory", r.resources.memory()}};
  ordered_json limits = {{"memory", r.resources.memory()}};
  if (r.gpus > 0) {
    requests[kGpuResource] = r.gpus;
    limits[kGpuResource] = r.gpus;
  }
  ordered_json mounts = ordered_json::array();
  mounts.push_back({{"name", "config"}, {"mountPath", kPodConfigDir}, {"readOnly", true}});
  mounts.push_back({{"name", "admin-token"}, {"mountPath", kPodTokenDir}, {"readOnly", true}});
  mounts.push_back({{"name", "internal-token"}, {"mountPath", kPodInternalTokenDir}, {"readOnly", true}});
  if (r.reward_spec) mounts.push_back({{"name", "reward-spec"}, {"mountPath", kPodRewardDir}, {"readOnly", true}});
  if (r.data) mounts.push_back({{"name", "data"}, {"mountPath", kPodDataDir}, {"readOnly", true}});
  mounts.push_back({{"name", "state"}, {"mountPath", kPodStateDir}});
  mounts.push_back({{"name", "tmp"}, {"mountPath", "/tmp"}});

  ordered_json container = {
      {"name", r.name},
      {"image", c.kubernetes().image()},
      {"imagePullPolicy",
       c.kubernetes().image_pull_policy().empty() ? "IfNotPresent" : c.kubernetes().image_pull_policy()},
      {"args", {"serve", r.name, "--config", kPodConfigFile, "--advertise", advertise}},
  };
  if (by_pod) {
    container["env"] = {{{"name", "POD_NAME"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.name"}}}}}}};
  }
  container["ports"] = ports;
  container["resources"] = {{"requests", requests}, {"limits", limits}};
  // Startup allows 10 minutes for loading a model; then readiness and liveness take over.
  container["startupProbe"] = Probe(health, 5, 120);
  container["readinessProbe"] = Probe(health, 10, 3);
  container["livenessProbe"] = Probe(health, 20, 3);
  container["securityContext"] = {{"allowPrivilegeEscalation", false},
                                  {"readOnlyRootFilesystem", true},
                                  {"runAsNonRoot", true},
                                  {"capabilities", {{"drop", {"ALL"}}}}};
  container["volumeMounts"] = mounts;
  return container;
}

ordered_json PodSpec(const RunConfig& c, const Role& r) {
  ordered_json volumes = ordered_json::array();
  volumes.push_back({{"name", "config"}, {"configMap", {{"name", "zerorl-config"}}}});
  volumes.push_back({{"name", "admin-token"}, {"secret", {{"secretName", kTokenSecret}}}});
  volumes.push_back({{"name", "internal-token"}, {"secret", {{"secretName", kInternalSecret}}}});
  if (r.reward_spec) volumes.push_back({{"name", "reward-spec"}, {"configMap", {{"name", "zerorl-reward-spec"}}}});
  if (r.data) {
    volumes.push_back({{"name", "data"},
                       {"persistentVolumeClaim", {{"claimName", c.kubernetes().data_claim()}, {"readOnly", true}}}});
  }
  if (r.state == State::kEmptyDir) volumes.push_back({{"name", "state"}, {"emptyDir", ordered_json::object()}});
  if (r.state == State::kClaim) {
    volumes.push_back({{"name", "state"}, {"persistentVolumeClaim", {{"claimName", r.name + "-state"}}}});
  }
  // Bounded: the reward pod's /tmp also holds the sandbox's work dirs, which untrusted code writes into.
  volumes.push_back({{"name", "tmp"}, {"emptyDir", {{"sizeLimit", kPodTmpSize}}}});

  ordered_json spec = {
      {"automountServiceAccountToken", false},
      {"enableServiceLinks", false},
      {"terminationGracePeriodSeconds", 60},
      {"securityContext",
       {{"runAsNonRoot", true},
        {"runAsUser", kPodUser},
        {"runAsGroup", kPodUser},
        {"fsGroup", kPodUser},
        {"seccompProfile", {{"type", "RuntimeDefault"}}}}},
      {"containers", {Container(c, r)}},
      {"volumes", volumes},
  };
  if (r.gpus > 0) {
    spec["tolerations"] = {{{"key", kGpuResource}, {"operator", "Exists"}, {"effect", "NoSchedule"}}};
  }
  return spec;
}

ordered_json WorkloadObject(const RunConfig& c, const Role& r) {
  ordered_json pod_metadata = {{"labels", Metadata(c, r.name, r.name)["labels"]}};
  ordered_json obj = {
      {"apiVersion", "apps/v1"},
      {"kind", r.workload == Workload::kDeployment ? "Deployment" : "StatefulSet"},
      {"metadata", Metadata(c, r.name, r.name)},
  };
  ordered_json spec = {{"replicas", r.replicas}, {"selector", {{"matchLabels", Labels(r.name)}}}};
  if (r.workload == Workload::kStatefulSet) {
    spec["serviceName"] = r.name;
    spec["podManagementPolicy"] = "Parallel";
  } else if (r.state == State::kClaim) {
    spec["strategy"] = {{"type", "Recreate"}};  // one writer of the ReadWriteOnce volume
  }
  spec["template"] = {{"metadata", pod_metadata}, {"spec", PodSpec(c, r)}};
  if (r.state == State::kClaimTemplate) {
    const std::string size = r.name == "buffer" ? c.kubernetes().storage_size() : StateSize(c);
    spec["volumeClaimTemplates"] = {{{"metadata", {{"name", "state"}}}, {"spec", ClaimSpec(c, size)}}};
  }
  obj["spec"] = spec;
  return obj;
}

ordered_json Service(const RunConfig& c, const Role& r) {
  ordered_json ports = ordered_json::array();
  ports.push_back({{"name", "grpc"}, {"port", r.port}, {"targetPort", "grpc"}, {"protocol", "TCP"}});
  if (r.name == "orchestrator" && c.orchestrator().metrics_port() > 0) {
    ports.push_back({{"name", "metrics"},
                     {"port", c.orchestrator().metrics_port()},
                     {"targetPort", "metrics"},
                     {"protocol", "TCP"}});
  }
  ordered_json spec = ordered_json::object();
  // Headless wherever peers need each pod (StatefulSet identity, reward and rollout pods).
  if (r.name != "orchestrator") spec["clusterIP"] = "None";
  spec["selector"] = Labels(r.name);
  spec["ports"] = ports;
  return {{"apiVersion", "v1"}, {"kind", "Service"}, {"metadata", Metadata(c, r.name, r.name)}, {"spec", spec}};
}

ordered_json RewardNetworkPolicy(const RunConfig& c) {
  const int health = c.server().health_port();
  ordered_json from_zerorl = {{"podSelector", {{"matchLabels", {{"app.kubernetes.io/name", "zerorl"}}}}}};
  ordered_json spec = {
      {"podSelector", {{"matchLabels", Labels("reward")}}},
      {"policyTypes", {"Ingress", "Egress"}},
      // Only zerorl pods may call the reward service; probes come from the node.
      {"ingress",
       {{{"from", {from_zerorl}},
         {"ports",
          {{{"protocol", "TCP"}, {"port", c.reward().listen_port()}},
           {{"protocol", "TCP"}, {"port", health}}}}}}},
      // No egress rules: reward pods (and the code they sandbox) reach nothing, DNS included.
      {"egress", ordered_json::array()},
  };
  return {{"apiVersion", "networking.k8s.io/v1"},
          {"kind", "NetworkPolicy"},
          {"metadata", Metadata(c, "reward-isolation", "reward")},
          {"spec", spec}};
}

ordered_json DisruptionBudget(const RunConfig& c, const std::string& role) {
  return {{"apiVersion", "policy/v1"},
          {"kind", "PodDisruptionBudget"},
          {"metadata", Metadata(c, role, role)},
          {"spec", {{"maxUnavailable", 1}, {"selector", {{"matchLabels", Labels(role)}}}}}};
}

absl::Status Bad(const std::string& key, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(key, ": ", what));
}

bool Matches(const std::string& s, const char* pattern) { return std::regex_match(s, std::regex(pattern)); }

}  // namespace

absl::Status ValidateKubernetesConfig(const RunConfig& c) {
  const auto& k = c.kubernetes();
  const char* kDnsLabel = "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?";
  const char* kQuantity = "([0-9]+(\\.[0-9]+)?|\\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?";
  if (!Matches(k.namespace_(), kDnsLabel))
    return Bad("kubernetes.namespace", "\"" + k.namespace_() + "\" is not a DNS label (a-z, 0-9, '-', max 63)");
  if (!k.cluster_domain().empty() && !Matches(k.cluster_domain(), "[a-z0-9]([-a-z0-9.]*[a-z0-9])?"))
    return Bad("kubernetes.cluster_domain", "\"" + k.cluster_domain() + "\" is not a domain name");
  if (k.image().empty() || k.image().find_first_of(" \t\n") != std::string::npos)
    return Bad("kubernetes.image", "must be an image reference without spaces");
  if (!Matches(c.run_id(), "[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"))
    return Bad("run_id", "must be a Kubernetes label value (alphanumeric at both ends, max 63) to deploy");
  if (k.rollout_replicas() < 1) return Bad("kubernetes.rollout_replicas", "must be at least 1");
  if (k.reward_replicas() < 1) return Bad("kubernetes.reward_replicas", "must be at least 1");
  if (k.rollout_gpus() < 0) return Bad("kubernetes.rollout_gpus", "must be >= 0");
  if (k.learner_gpus() < 0) return Bad("kubernetes.learner_gpus", "must be >= 0");
  if (!Matches(k.storage_size(), kQuantity))
    return Bad("kubernetes.storage_size", "\"" + k.storage_size() + "\" is not a quantity like 10Gi");
  if (!k.state_size().empty() && !Matches(k.state_size(), kQuantity))
    return Bad("kubernetes.state_size", "\"" + k.state_size() + "\" is not a quantity like 10Gi");
  if (!k.storage_class().empty() && !Matches(k.storage_class(), "[a-z0-9]([-a-z0-9.]*[a-z0-9])?"))
    return Bad("kubernetes.storage_class", "\"" + k.storage_class() + "\" is not a valid name");
  if (!k.data_claim().empty() && !Matches(k.data_claim(), "[a-z0-9]([-a-z0-9.]*[a-z0-9])?"))
    return Bad("kubernetes.data_claim", "\"" + k.data_claim() + "\" is not a valid claim name");
  const std::string policy = k.image_pull_policy();
  if (!policy.empty() && policy != "Always" && policy != "IfNotPresent" && policy != "Never")
    return Bad("kubernetes.image_pull_policy", "must be Always, IfNotPresent or Never");
  const std::pair<const char*, const KubernetesResources*> resources[] = {
      {"orchestrator", &k.orchestrator()}, {"rollout", &k.rollout()}, {"reward", &k.reward()},
      {"buffer", &k.buffer()},             {"learner", &k.learner()}};
  for (const auto& [role, r] : resources) {
    if (!r->cpu().empty() && !Matches(r->cpu(), kQuantity))
      return Bad(absl::StrCat("kubernetes.", role, ".cpu"), "\"" + r->cpu() + "\" is not a quantity like 500m");
    if (!r->memory().empty() && !Matches(r->memory(), kQuantity))
      return Bad(absl::StrCat("kubernetes.", role, ".memory"), "\"" + r->memory() + "\" is not a quantity like 2Gi");
  }
  const int health = c.server().health_port() == 0 ? kDefaultHealthPort : c.server().health_port();
  const std::pair<const char*, int> ports[] = {
      {"orchestrator.listen_port", c.orchestrator().listen_port()}, {"rollout.listen_port", c.rollout().listen_port()},
      {"reward.listen_port", c.reward().listen_port()},             {"buffer.listen_port", c.buffer().listen_port()},
      {"learner.listen_port", c.learner().listen_port()}};
  if (health < 1 || health > 65535) return Bad("server.health_port", "must be a port in 1..65535");
  for (const auto& [key, port] : ports) {
    if (port < 1 || port > 65535) return Bad(key, "must be a port in 1..65535 to deploy (0 picks a random one)");
    if (port == health) return Bad("server.health_port", absl::StrCat("must differ from ", key));
  }
  const int metrics = c.orchestrator().metrics_port();
  if (metrics != 0 && (metrics == health || metrics == c.orchestrator().listen_port()))
    return Bad("orchestrator.metrics_port", "must differ from the orchestrator's gRPC and health ports");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ordered_json>> RenderK8sObjects(const RunConfig& user_config,
                                                          const std::string& reward_spec_yaml,
                                                          const std::string& internal_token) {
  if (auto s = ValidateKubernetesConfig(user_config); !s.ok()) return s;
  const RunConfig c = InClusterConfig(user_config, !reward_spec_yaml.empty());
  auto run_yaml = ConfigOverridesYaml(c);
  if (!run_yaml.ok()) return run_yaml.status();

  std::vector<ordered_json> objects;
  ordered_json ns_labels = {{"app.kubernetes.io/name", "zerorl"},
                            {"pod-security.kubernetes.io/enforce", "restricted"},
                            {"pod-security.kubernetes.io/enforce-version", "latest"},
                            {"pod-security.kubernetes.io/audit", "restricted"},
                            {"pod-security.kubernetes.io/warn", "restricted"}};
  objects.push_back({{"apiVersion", "v1"},
                     {"kind", "Namespace"},
                     {"metadata", {{"name", c.kubernetes().namespace_()}, {"labels", ns_labels}}}});
  if (!internal_token.empty()) {
    objects.push_back({{"apiVersion", "v1"},
                       {"kind", "Secret"},
                       {"metadata", Metadata(c, kInternalSecret, "internal-token")},
                       {"type", "Opaque"},
                       {"stringData", {{"token", internal_token}}}});
  }
  objects.push_back({{"apiVersion", "v1"},
                     {"kind", "ConfigMap"},
                     {"metadata", Metadata(c, "zerorl-config", "config")},
                     {"data", {{"run.yaml", *run_yaml}}}});
  if (!reward_spec_yaml.empty()) {
    objects.push_back({{"apiVersion", "v1"},
                       {"kind", "ConfigMap"},
                       {"metadata", Metadata(c, "zerorl-reward-spec", "reward")},
                       {"data", {{"spec.yaml", reward_spec_yaml}}}});
  }
  const std::vector<Role> roles = Roles(c, !reward_spec_yaml.empty());
  for (const Role& r : roles) {
    if (r.state != State::kClaim) continue;
    objects.push_back({{"apiVersion", "v1"},
                       {"kind", "PersistentVolumeClaim"},
                       {"metadata", Metadata(c, r.name + "-state", r.name)},
                       {"spec", ClaimSpec(c, StateSize(c))}});
  }
  for (const Role& r : roles) objects.push_back(Service(c, r));
  for (const Role& r : roles) objects.push_back(WorkloadObject(c, r));
  objects.push_back(RewardNetworkPolicy(c));
  objects.push_back(DisruptionBudget(c, "rollout"));
  objects.push_back(DisruptionBudget(c, "reward"));
  return objects;
}

}  // namespace zerorl
