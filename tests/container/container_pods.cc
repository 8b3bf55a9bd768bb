// Pods of a rendered deployment as podman containers (see container_pods.h).
#include "tests/container/container_pods.h"

#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <set>

#include "absl/strings/str_cat.h"
#include "tests/k8s/rendered_manifests.h"

namespace zerorl::testing {
namespace {

absl::Status Unsupported(const std::string& pod, const std::string& what) {
  return absl::UnimplementedError(absl::StrCat(pod, ": the container test cannot translate ", what,
                                               " (tests/container/container_pods.h lists what it can)"));
}

// A Kubernetes quantity ("512Mi", "2Gi", "1G", "1000") in bytes; -1 when malformed.
int64_t Bytes(const std::string& q) {
  std::smatch m;
  if (!std::regex_match(q, m, std::regex("([0-9]+)(Ki|Mi|Gi|Ti|k|M|G|T)?"))) return -1;
  int64_t v = std::stoll(m[1]);
  const std::string unit = m[2];
  const std::map<std::string, int64_t> mult = {{"", 1},          {"Ki", 1ll << 10}, {"Mi", 1ll << 20},
                                               {"Gi", 1ll << 30}, {"Ti", 1ll << 40}, {"k", 1000},
                                               {"M", 1000000},    {"G", 1000000000}, {"T", 1000000000000}};
  return v * mult.at(unit);
}

void WriteFile(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  chmod(path.c_str(), mode);
}

std::string RandomToken() {
  std::random_device rd;
  std::string t;
  for (int i = 0; i < 32; ++i) t += "0123456789abcdef"[rd() % 16];
  return t;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ContainerDeployment>> ContainerDeployment::Create(const std::string& rendered_yaml,
                                                                                 const std::string& dir,
                                                                                 const Options& options) {
  auto manifests = ParseRenderedManifests(rendered_yaml);
  if (!manifests.ok()) return manifests.status();
  RenderedManifests& k8s = *manifests;
  std::unique_ptr<ContainerDeployment> out(new ContainerDeployment());
  out->options_ = options;
  out->token_ = RandomToken();
  if (!k8s.config_maps.count("zerorl-config") || !k8s.config_maps["zerorl-config"].count("run.yaml")) {
    return absl::InvalidArgumentError("the manifests have no ConfigMap zerorl-config with run.yaml");
  }
  YAML::Node run = YAML::Load(k8s.config_maps["zerorl-config"]["run.yaml"]);
  if (options.edit_config) options.edit_config(run);
  {
    YAML::Emitter e;
    e << run;
    out->run_yaml_ = std::string(e.c_str()) + "\n";
  }
  k8s.config_maps["zerorl-config"]["run.yaml"] = out->run_yaml_;

  // Pod names, IPs and the DNS names that resolve to them.
  std::vector<std::string> hosts;  // "name:ip" for --add-host
  int next_ip = options.first_ip;
  for (const PodName& name : PodNames(k8s)) {
    ContainerPod pod;
    pod.name = name.name;
    pod.container = "zerorl-ct-" + pod.name;
    pod.ip = absl::StrCat("127.0.", options.ip_prefix, ".", next_ip++);
    for (const std::string& dns : name.dns_names) hosts.push_back(absl::StrCat(dns, ":", pod.ip));
    out->pods_.push_back(std::move(pod));
  }

  size_t index = 0;
  for (const YAML::Node& w : k8s.workloads) {
    const int replicas = w["spec"]["replicas"].as<int>(1);
    const YAML::Node spec = w["spec"]["template"]["spec"];
    std::set<std::string> claim_templates;
    for (const auto& t : w["spec"]["volumeClaimTemplates"]) claim_templates.insert(t["metadata"]["name"].as<std::string>());
    for (int i = 0; i < replicas; ++i, ++index) {
      ContainerPod& pod = out->pods_[index];
      if (spec["containers"].size() != 1) return Unsupported(pod.name, "a pod with other than one container");
      if (spec["initContainers"]) return Unsupported(pod.name, "init containers");
      if (spec["hostNetwork"] || spec["hostPID"] || spec["hostIPC"]) return Unsupported(pod.name, "host namespaces");
      const YAML::Node c = spec["containers"][0];
      const std::string root = absl::StrCat(dir, "/", pod.name);
      std::filesystem::create_directories(root);
      pod.log = root + "/podman.log";

      // Security: the container's settings override the pod's.
      const YAML::Node psc = spec["securityContext"], csc = c["securityContext"];
      auto setting = [&](const char* key) { return csc && csc[key] ? csc[key] : psc ? psc[key] : YAML::Node(); };
      const YAML::Node uid_node = setting("runAsUser"), gid_node = setting("runAsGroup");
      if (!uid_node) return Unsupported(pod.name, "a pod without runAsUser (the image's user would apply)");
      const int uid = uid_node.as<int>();
      const int gid = gid_node ? gid_node.as<int>() : 0;
      const int fs_group = psc && psc["fsGroup"] ? psc["fsGroup"].as<int>() : -1;
      if (setting("runAsNonRoot") && setting("runAsNonRoot").as<bool>() && uid == 0) {
        return absl::FailedPreconditionError(pod.name + ": runAsNonRoot with runAsUser 0 would never start");
      }
      const YAML::Node seccomp = setting("seccompProfile");
      const std::string seccomp_type = seccomp ? seccomp["type"].as<std::string>("") : "";
      if (seccomp_type != "RuntimeDefault" && seccomp_type != "Unconfined") {
        return Unsupported(pod.name, "seccompProfile \"" + seccomp_type + "\"");
      }
      if (csc && csc["privileged"] && csc["privileged"].as<bool>()) return Unsupported(pod.name, "privileged");

      // Node-wide settings, as a node has them (crun refuses this kernel's cgroups; runc may not raise the
      // open-files limit above ours).
      struct rlimit nofile = {};
      getrlimit(RLIMIT_NOFILE, &nofile);
      const uint64_t files = std::min<uint64_t>(nofile.rlim_max, 65536);
      std::vector<std::string> a = {options.engine, "--runtime", "runc", "run", "--rm", "--replace",
                                    "--name", pod.container, "--network", "host", "--hostname", pod.name,
                                    "--ulimit", absl::StrCat("nofile=", files, ":", files),
                                    "--ulimit", "nproc=16384:16384", "--user", absl::StrCat(uid, ":", gid)};
      if (fs_group >= 0) a.insert(a.end(), {"--group-add", std::to_string(fs_group)});
      if (seccomp_type == "Unconfined") a.insert(a.end(), {"--security-opt", "seccomp=unconfined"});
      if (csc && csc["allowPrivilegeEscalation"] && !csc["allowPrivilegeEscalation"].as<bool>()) {
        a.insert(a.end(), {"--security-opt", "no-new-privileges"});
      }
      if (csc && csc["readOnlyRootFilesystem"] && csc["readOnlyRootFilesystem"].as<bool>()) {
        a.insert(a.end(), {"--read-only", "--read-only-tmpfs=false"});  // writable: the volumes only
      }
      if (csc && csc["capabilities"]) {
        for (const auto& cap : csc["capabilities"]["drop"]) a.insert(a.end(), {"--cap-drop", cap.as<std::string>()});
        for (const auto& cap : csc["capabilities"]["add"]) a.insert(a.end(), {"--cap-add", cap.as<std::string>()});
      }
      if (const YAML::Node mem = c["resources"]["limits"]["memory"]) {
        const int64_t bytes = Bytes(mem.as<std::string>());
        if (bytes <= 0) return Unsupported(pod.name, "memory limit " + mem.as<std::string>());
        a.insert(a.end(), {"--memory", std::to_string(bytes)});
      }
      if (spec["terminationGracePeriodSeconds"]) {
        a.insert(a.end(), {"--stop-timeout", spec["terminationGracePeriodSeconds"].as<std::string>()});
      }
      const std::string pull = c["imagePullPolicy"].as<std::string>("IfNotPresent");
      a.insert(a.end(), {"--pull", pull == "Always" ? "always" : pull == "Never" ? "never" : "missing"});
      for (const std::string& h : hosts) a.insert(a.end(), {"--add-host", h});

      // Volumes.
      std::map<std::string, YAML::Node> volumes;
      for (const YAML::Node& v : spec["volumes"]) volumes[v["name"].as<std::string>()] = YAML::Node(v);
      for (const auto& m : c["volumeMounts"]) {
        const std::string vname = m["name"].as<std::string>(), path = m["mountPath"].as<std::string>();
        if (m["subPath"] || m["subPathExpr"]) return Unsupported(pod.name, "subPath mounts");
        bool read_only = m["readOnly"].as<bool>(false);
        std::string host;
        if (claim_templates.count(vname)) {
          host = absl::StrCat(dir, "/pvc-", vname, "-", pod.name);
        } else if (!volumes.count(vname)) {
          return absl::InvalidArgumentError(absl::StrCat(pod.name, ": volumeMount ", vname, " names no volume"));
        } else if (const YAML::Node v = volumes[vname]; v["configMap"] || v["secret"]) {
          // The kubelet's files: root-owned, 0644 (defaultMode), in a read-only directory.
          const bool cm = static_cast<bool>(v["configMap"]);
          const std::string ref = cm ? v["configMap"]["name"].as<std::string>() : v["secret"]["secretName"].as<std::string>();
          if (v[cm ? "configMap" : "secret"]["items"]) return Unsupported(pod.name, "ConfigMap/Secret items");
          std::map<std::string, std::string> files;
          if (cm) {
            if (!k8s.config_maps.count(ref)) return absl::InvalidArgumentError(pod.name + ": no ConfigMap " + ref);
            files = k8s.config_maps[ref];
          } else {
            // The admin token Secret is created by the operator (k8s/README.md); here the test is the operator.
            files = k8s.secrets.count(ref) ? k8s.secrets[ref] : std::map<std::string, std::string>{{"token", out->token_ + "\n"}};
          }
          host = absl::StrCat(root, "/", cm ? "configmap-" : "secret-", vname);
          std::filesystem::create_directories(host);
          chmod(host.c_str(), 0755);
          for (const auto& [key, text] : files) WriteFile(host + "/" + key, text, 0644);
          read_only = true;
        } else if (v["emptyDir"]) {
          host = absl::StrCat(root, "/emptydir-", vname);
          const bool mounted = std::find(pod.tmpfs.begin(), pod.tmpfs.end(), host) != pod.tmpfs.end();
          std::filesystem::create_directories(host);
          const std::string limit = v["emptyDir"]["sizeLimit"].as<std::string>("");
          const bool memory = v["emptyDir"]["medium"].as<std::string>("") == "Memory";
          if ((!limit.empty() || memory) && !mounted) {
            // A bounded emptyDir, kept across container restarts like the pod's volume: medium Memory is a
            // tmpfs (its pages count against the container's memory, as on a node); a disk emptyDir with a
            // sizeLimit is a file system of that size on a loop device (its page cache can be written back).
            const int64_t bytes = limit.empty() ? (512ll << 20) : Bytes(limit);
            if (bytes <= 0) return Unsupported(pod.name, "emptyDir sizeLimit " + limit);
            if (memory) {
              const std::string opts = absl::StrCat("size=", bytes, ",mode=0777");
              if (mount("tmpfs", host.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0) {
                return absl::InternalError(absl::StrCat("mounting a tmpfs on ", host, ": ", strerror(errno)));
              }
            } else {
              const std::string image = host + ".img";
              std::string log;
              if (truncate(image.c_str(), 0) != 0) std::ofstream(image).close();
              if (truncate(image.c_str(), bytes) != 0 ||
                  RunCommand({"mkfs.ext4", "-q", "-F", "-m", "0", image}, &log) != 0 ||
                  RunCommand({"mount", "-o", "loop,nosuid,nodev", image, host}, &log) != 0) {
                return absl::InternalError(absl::StrCat("emptyDir ", vname, " of ", pod.name, ": cannot make a ",
                                                        limit, " file system on a loop device for it: ", log));
              }
              std::filesystem::remove(host + "/lost+found");
            }
            pod.tmpfs.push_back(host);
          }
          chmod(host.c_str(), 0777);
        } else if (v["persistentVolumeClaim"]) {
          host = absl::StrCat(dir, "/pvc-", v["persistentVolumeClaim"]["claimName"].as<std::string>());
          if (v["persistentVolumeClaim"]["readOnly"].as<bool>(false)) read_only = true;
        } else {
          return Unsupported(pod.name, "volume " + vname + " (only configMap, secret, emptyDir and PVCs)");
        }
        if (host.find("/pvc-") != std::string::npos && !std::filesystem::exists(host)) {
          // A fresh volume, group-owned by fsGroup and group-writable (setgid), as the kubelet prepares it.
          std::filesystem::create_directories(host);
          if (chown(host.c_str(), 0, fs_group >= 0 ? fs_group : gid) != 0) return absl::InternalError("chown " + host);
          chmod(host.c_str(), 02775);
        }
        a.insert(a.end(), {"--volume", absl::StrCat(host, ":", path, read_only ? ":ro" : "")});
      }

      // Args with $(VAR) from the env.
      std::map<std::string, std::string> env;
      for (const auto& e : c["env"]) {
        const std::string key = e["name"].as<std::string>();
        if (e["value"]) {
          env[key] = e["value"].as<std::string>();
        } else {
          const std::string field = e["valueFrom"]["fieldRef"]["fieldPath"].as<std::string>("");
          if (field == "metadata.name") {
            env[key] = pod.name;
          } else if (field == "metadata.namespace") {
            env[key] = k8s.ns;
          } else if (field == "status.podIP") {
            env[key] = pod.ip;
          } else {
            return Unsupported(pod.name, "env " + key + " from " + (field.empty() ? "a non-fieldRef source" : field));
          }
        }
        a.insert(a.end(), {"--env", key + "=" + env[key]});
      }
      const std::string role = c["args"] && c["args"].size() > 1 ? c["args"][1].as<std::string>() : "";
      if (options.extra_files.count(role)) {
        for (const auto& [from, to] : options.extra_files.at(role)) a.insert(a.end(), {"--volume", from + ":" + to + ":ro"});
      }
      a.push_back(options.image.empty() ? c["image"].as<std::string>() : options.image);
      if (c["command"]) return Unsupported(pod.name, "a command (the image's ENTRYPOINT runs the args)");
      for (const auto& arg : c["args"]) a.push_back(ExpandEnvVars(arg.as<std::string>(), env));
      a.insert(a.end(), {"--host", pod.ip});  // a pod's 0.0.0.0 is its own network namespace
      pod.run_argv = a;
      pod.role = role;
      pod.grpc_port = NamedPort(c, "grpc");
      pod.health_port = NamedPort(c, "health");
    }
  }
  return out;
}

ContainerDeployment::~ContainerDeployment() {
  for (auto& p : pods_) {
    std::string ignored;
    RunCommand({options_.engine, "rm", "-f", "-t", "0", p.container}, &ignored);
    p.process.reset();
    for (const auto& m : p.tmpfs) {
      std::string log;
      if (RunCommand({"umount", m}, &log) != 0) umount2(m.c_str(), MNT_DETACH);  // a loop device is freed by umount
      std::filesystem::remove(m + ".img");
    }
  }
}

ContainerPod* ContainerDeployment::Find(const std::string& name) {
  for (auto& p : pods_) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

std::string ContainerDeployment::Address(const ContainerPod& pod) const {
  return absl::StrCat(pod.ip, ":", pod.grpc_port);
}

absl::Status ContainerDeployment::Start(ContainerPod& pod, std::chrono::milliseconds timeout) {
  const auto t0 = std::chrono::steady_clock::now();
  pod.process = std::make_unique<Subprocess>();
  if (!pod.process->Start(pod.run_argv, pod.log)) return absl::InternalError("cannot run " + options_.engine);
  if (!pod.process->WaitForLine("listening ", timeout).has_value()) {
    return absl::DeadlineExceededError(absl::StrCat(pod.name, " did not start listening; its log:\n", LogTail(pod)));
  }
  pod.listening_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return absl::OkStatus();
}

void ContainerDeployment::Kill(ContainerPod& pod) {
  std::string ignored;
  RunCommand({options_.engine, "kill", "--signal", "KILL", pod.container}, &ignored);
  if (pod.process) pod.process->Wait(std::chrono::seconds(30));
}

int ContainerDeployment::Exec(const ContainerPod& pod, const std::vector<std::string>& argv, std::string* output,
                              const std::vector<std::string>& env, std::chrono::milliseconds timeout) {
  std::vector<std::string> a = {options_.engine, "exec"};
  for (const auto& e : env) a.insert(a.end(), {"--env", e});
  a.insert(a.end(), {pod.container, "sh", "-c", "exec \"$0\" \"$@\" 2>&1"});
  a.insert(a.end(), argv.begin(), argv.end());
  return RunCommand(a, output, timeout);
}

std::vector<std::string> ContainerDeployment::StopAll() {
  std::vector<std::string> bad;
  for (auto& p : pods_) {
    if (!p.process || !p.process->running()) continue;
    std::string ignored;
    RunCommand({options_.engine, "stop", "-t", "60", p.container}, &ignored, std::chrono::seconds(90));
    const int rc = p.process->Wait(std::chrono::seconds(30));
    if (rc != 0) bad.push_back(absl::StrCat(p.name, " exited ", rc, ": ", LogTail(p, 800)));
  }
  return bad;
}

std::string ContainerDeployment::LogTail(const ContainerPod& pod, size_t bytes) const { return FileTail(pod.log, bytes); }

}  // namespace zerorl::testing
