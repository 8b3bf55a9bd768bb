// Test helper: the pods of a rendered zerorl deployment, each run as a podman
// container of the image, configured from the manifests and nothing else.
//
// Takes the YAML stream of `zerorl k8s render` and plays kubelet with podman
// (`--runtime runc`) on loopback. From each pod template it derives:
//   - the image, args ($(VAR) expanded from the env, fieldRef metadata.name /
//     status.podIP), env, and memory limit;
//   - the security settings: runAsUser/runAsGroup (--user), fsGroup
//     (--group-add, and the group of every writable volume), runAsNonRoot
//     (checked), capabilities drop/add, allowPrivilegeEscalation: false
//     (no-new-privileges), seccompProfile RuntimeDefault (the engine's default
//     profile), readOnlyRootFilesystem (--read-only with no extra tmpfs);
//   - the volumes: ConfigMaps and Secrets as read-only directories of files
//     (mode 0644, as the kubelet writes them); emptyDir as a directory that
//     outlives container restarts (with a sizeLimit: a file system of that size
//     on a loop device, or a tmpfs for medium Memory);
//     PVCs and volumeClaimTemplates as per-pod directories. Nothing else of the
//     container is writable.
// Anything it cannot translate (subPath, hostPath, other seccomp profiles,
// privileged, ...) is an error naming it, so the test breaks when the
// manifests change shape.
//
// Networking: every container shares the host's network, and gets its own
// loopback address 127.0.PREFIX.N as its "pod IP"; the cluster's DNS names of
// the run config become /etc/hosts entries (--add-host). The one deviation
// from the manifests: `--host POD_IP` is appended to the args, because a pod's
// 0.0.0.0 is only its own network namespace (here it would be every address
// of the host). Nothing listens on a non-loopback address.
//
// Not thread-safe. Needs root (podman as root, tmpfs mounts).
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

struct ContainerPod {
  std::string name;        // "rollout-0", "orchestrator"
  std::string role;        // args[1]
  std::string container;   // the podman container's name
  std::string ip;          // 127.0.P.N
  int grpc_port = 0;       // containerPort "grpc"
  int health_port = 0;     // containerPort "health"
  std::vector<std::string> run_argv;  // podman run ... IMAGE ARGS
  std::vector<std::string> tmpfs;     // host mounts standing in for emptyDirs with a sizeLimit
  std::string log;                    // stderr of `podman run`
  std::unique_ptr<Subprocess> process;
  double listening_s = -1;            // start to the "listening" line, last start
};

class ContainerDeployment {
 public:
  struct Options {
    std::string engine = "podman";
    std::string image;          // overrides the manifests' image when set
    int ip_prefix = 3;          // pods get 127.0.<ip_prefix>.<first_ip + i>
    int first_ip = 1;
    // May change the run config (e.g. fewer steps) before it is written.
    std::function<void(YAML::Node&)> edit_config;
    // Extra read-only files for pods of a role: role -> {host path -> path in the container} (test tools).
    std::map<std::string, std::map<std::string, std::string>> extra_files;
  };

  static absl::StatusOr<std::unique_ptr<ContainerDeployment>> Create(const std::string& rendered_yaml,
                                                                     const std::string& dir, const Options& options);
  ~ContainerDeployment();  // removes the containers and unmounts the tmpfs volumes

  std::vector<ContainerPod>& pods() { return pods_; }
  ContainerPod* Find(const std::string& name);
  std::string Address(const ContainerPod& pod) const;  // "ip:grpc_port"
  const std::string& admin_token() const { return token_; }
  const std::string& run_config_yaml() const { return run_yaml_; }

  // `podman run`s the pod's container and waits for its "listening" line.
  absl::Status Start(ContainerPod& pod, std::chrono::milliseconds timeout);
  // SIGKILLs the container's process (the container stops) and reaps `podman run`.
  void Kill(ContainerPod& pod);
  // `podman exec` in the running container, as its user; returns the exit code and the output.
  int Exec(const ContainerPod& pod, const std::vector<std::string>& argv, std::string* output,
           const std::vector<std::string>& env = {}, std::chrono::milliseconds timeout = std::chrono::minutes(5));
  // SIGTERM every running container (podman stop); returns the pods that did not exit 0.
  std::vector<std::string> StopAll();
  std::string LogTail(const ContainerPod& pod, size_t bytes = 3000) const;

 private:
  ContainerDeployment() = default;
  Options options_;
  std::vector<ContainerPod> pods_;
  std::string token_;
  std::string run_yaml_;
};

}  // namespace zerorl::testing
