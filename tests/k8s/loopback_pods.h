// Test helper: the pods of a rendered zerorl deployment, run as local processes.
//
// Takes the YAML stream of `zerorl k8s render` and plays kubelet on loopback:
// every pod gets its own address 127.0.0.N (its "pod IP") and a directory that
// stands in for its filesystem, where its ConfigMap and Secret volumes are
// written (laid out as the kubelet does: key -> ..data/key, ..data -> a
// timestamped directory) and its other volumes live (kept across restarts, as a PVC or an
// emptyDir in a restarted container would be). Service and pod DNS names in
// the run config become the pods' addresses; server.bind_host becomes the pod's
// address (a pod's 0.0.0.0 is only its own network namespace). The container
// args are run exactly as written, with $(VAR) expanded from the downward-API
// env and paths under the mounts pointed into the pod's directory.
// Not thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/testing/subprocess.h"

namespace zerorl::testing {

struct LoopbackPod {
  std::string name;      // "rollout-0", "orchestrator"
  std::string role;      // args[1]
  std::string ip;        // 127.0.0.N
  std::string root;      // the pod's directory
  std::vector<std::string> argv;  // zerorl binary + the container's args, expanded
  int grpc_port = 0;     // containerPort "grpc"
  int health_port = 0;   // containerPort "health"
  std::string log;       // stderr of the process
  std::unique_ptr<Subprocess> process;
};

class LoopbackDeployment {
 public:
  // `edit_config` may change the run config of every pod (e.g. fewer steps).
  // Pods get 127.0.0.<first_ip>, <first_ip + 1>, ... (tests running at once use different ranges).
  static absl::StatusOr<std::unique_ptr<LoopbackDeployment>> Create(
      const std::string& rendered_yaml, const std::string& dir, int first_ip,
      const std::function<void(YAML::Node&)>& edit_config = nullptr);

  std::vector<LoopbackPod>& pods() { return pods_; }
  LoopbackPod* Find(const std::string& name);
  // "ip:port" of a pod's gRPC port.
  std::string Address(const LoopbackPod& pod) const;

  // Starts the pod's process and waits for its "listening" line.
  absl::Status Start(LoopbackPod& pod, std::chrono::milliseconds timeout);
  void Kill(LoopbackPod& pod);  // SIGKILL and reap
  // Changes one key of a ConfigMap volume the way the kubelet does: a new
  // timestamped directory, then an atomic rename of the ..data symlink.
  absl::Status UpdateConfigMapFile(const LoopbackPod& pod, const std::string& mount_path, const std::string& key,
                                   const std::string& text);
  // SIGTERM every running pod; returns the pods that did not exit 0.
  std::vector<std::string> StopAll();
  std::string LogTail(const LoopbackPod& pod, size_t bytes = 3000) const;

 private:
  std::vector<LoopbackPod> pods_;
};

}  // namespace zerorl::testing
