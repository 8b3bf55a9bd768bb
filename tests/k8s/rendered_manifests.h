// The rendered manifests of a zerorl deployment (`zerorl k8s render`), read
// as the two test kubelets need them: tests/k8s/loopback_pods.h runs the pods
// as local processes, tests/container/container_pods.h as podman containers.
// Both name the pods, give them addresses and resolve the cluster's DNS names
// to them the same way, which is what this file holds.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "absl/status/statusor.h"

namespace zerorl::testing {

struct RenderedManifests {
  std::string ns;                                 // the Namespace's name
  std::string cluster_domain = "cluster.local";   // zerorl-config run.yaml's kubernetes.cluster_domain
  std::map<std::string, std::map<std::string, std::string>> config_maps;  // name -> key -> text
  std::map<std::string, std::map<std::string, std::string>> secrets;      // name -> stringData key -> text
  std::vector<YAML::Node> workloads;              // the Deployments and StatefulSets, in order
};

// An error when the text is not a YAML stream, or holds a kind of workload
// the test kubelets do not run (Pod, DaemonSet, Job, ReplicaSet).
absl::StatusOr<RenderedManifests> ParseRenderedManifests(const std::string& yaml);

// One pod of a workload, and the DNS names that resolve to it: its Service's
// name (replica 0) and, for a StatefulSet, its own stable name.
struct PodName {
  std::string name;      // "rollout-0", "orchestrator"
  size_t workload = 0;   // index into RenderedManifests::workloads
  int replica = 0;
  std::vector<std::string> dns_names;
};
// Every pod, workload by workload: a StatefulSet's as NAME-i, a Deployment's as
// NAME (NAME-i with more than one replica).
std::vector<PodName> PodNames(const RenderedManifests& m);

// `text` with every $(VAR) of `env` replaced by its value, as the kubelet does for args.
std::string ExpandEnvVars(std::string text, const std::map<std::string, std::string>& env);

// The containerPort named `name` of a container spec; 0 when it has none.
int NamedPort(const YAML::Node& container, const std::string& name);

// The last `bytes` bytes of a file (a pod's log); empty when it cannot be read.
std::string FileTail(const std::string& path, size_t bytes);

}  // namespace zerorl::testing
