// Pods of a rendered deployment as local processes (see loopback_pods.h).
#include "tests/k8s/loopback_pods.h"

#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "tests/k8s/rendered_manifests.h"

namespace zerorl::testing {
namespace {

constexpr char kToken[] = "loopback-admin-token";

struct Mount {
  std::string path;   // inside the pod
  std::string local;  // in the pod's directory
};

void WriteFile(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// A ConfigMap volume as the kubelet lays it out: every key a symlink into ..data,
// ..data a symlink to the current timestamped directory. Rewrites ..data atomically.
void WriteAtomicVolume(const std::string& dir, const std::map<std::string, std::string>& files) {
  static int generation = 0;
  const std::string stamp = absl::StrCat("..gen_", ++generation);
  std::filesystem::create_directories(dir + "/" + stamp);
  for (const auto& [key, text] : files) WriteFile(dir + "/" + stamp + "/" + key, text);
  std::filesystem::remove(dir + "/..data_tmp");
  std::filesystem::create_directory_symlink(stamp, dir + "/..data_tmp");
  std::filesystem::rename(dir + "/..data_tmp", dir + "/..data");
  for (const auto& [key, text] : files) {
    if (!std::filesystem::is_symlink(dir + "/" + key)) std::filesystem::create_symlink("..data/" + key, dir + "/" + key);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<LoopbackDeployment>> LoopbackDeployment::Create(
    const std::string& rendered_yaml, const std::string& dir, int first_ip,
    const std::function<void(YAML::Node&)>& edit_config) {
  auto manifests = ParseRenderedManifests(rendered_yaml);
  if (!manifests.ok()) return manifests.status();
  RenderedManifests& k8s = *manifests;

  auto out = std::make_unique<LoopbackDeployment>();
  std::vector<std::pair<std::string, std::string>> hosts;  // DNS name -> pod IP
  int next_ip = first_ip;
  for (const PodName& name : PodNames(k8s)) {
    LoopbackPod pod;
    pod.name = name.name;
    pod.ip = absl::StrCat("127.0.0.", next_ip++);
    pod.root = absl::StrCat(dir, "/", pod.name);
    for (const std::string& dns : name.dns_names) hosts.push_back({dns, pod.ip});
    out->pods_.push_back(std::move(pod));
  }
  // Longest first: pod names end with their service's name.
  std::sort(hosts.begin(), hosts.end(), [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });

  size_t index = 0;
  for (const YAML::Node& w : k8s.workloads) {
    const int replicas = w["spec"]["replicas"].as<int>(1);
    const YAML::Node spec = w["spec"]["template"]["spec"];
    const YAML::Node c = spec["containers"][0];
    for (int i = 0; i < replicas; ++i, ++index) {
      LoopbackPod& pod = out->pods_[index];
      std::filesystem::create_directories(pod.root);
      pod.log = pod.root + "/stderr.log";
      std::vector<Mount> mounts;
      std::map<std::string, std::string> volume_cm, volume_secret;
      for (const auto& v : spec["volumes"]) {
        if (v["configMap"]) volume_cm[v["name"].as<std::string>()] = v["configMap"]["name"].as<std::string>();
        if (v["secret"]) volume_secret[v["name"].as<std::string>()] = v["secret"]["secretName"].as<std::string>();
      }
      for (const auto& m : c["volumeMounts"]) {
        const std::string path = m["mountPath"].as<std::string>();
        Mount mount{path, pod.root + path};
        std::filesystem::create_directories(mount.local);
        if (path != "/tmp") mounts.push_back(mount);
      }
      std::sort(mounts.begin(), mounts.end(), [](const Mount& a, const Mount& b) { return a.path.size() > b.path.size(); });
      // One pass over both kinds of name, so an inserted path is never rewritten again.
      std::vector<std::pair<std::string, std::string>> rewrites = hosts;
      for (const Mount& m : mounts) rewrites.push_back({m.path, m.local});
      auto localize = [&](const std::string& text) { return absl::StrReplaceAll(text, rewrites); };
      for (const auto& m : c["volumeMounts"]) {
        const std::string vol = m["name"].as<std::string>();
        const std::string local = pod.root + m["mountPath"].as<std::string>();
        if (volume_secret.count(vol)) {
          // As the kubelet would: the rendered Secret's token, else one per Secret
          // (the operator's; the admin and the internal token must differ).
          const std::string& secret = volume_secret[vol];
          const std::string token = k8s.secrets[secret].count("token") ? k8s.secrets[secret]["token"]
                                    : secret == "zerorl-admin-token" ? std::string(kToken)
                                                                     : "loopback-" + secret;
          WriteFile(local + "/token", token + "\n");
        }
        if (!volume_cm.count(vol)) continue;
        std::map<std::string, std::string> files;
        for (const auto& [key, text] : k8s.config_maps[volume_cm[vol]]) {
          std::string body = localize(text);
          if (key == "run.yaml") {
            YAML::Node run = YAML::Load(body);
            run["server"]["bind_host"] = pod.ip;  // the pod's own network namespace
            if (edit_config) edit_config(run);
            YAML::Emitter e;
            e << run;
            body = std::string(e.c_str()) + "\n";
          }
          files[key] = body;
        }
        WriteAtomicVolume(local, files);
      }
      std::map<std::string, std::string> env;
      for (const auto& e : c["env"]) {
        const std::string field = e["valueFrom"]["fieldRef"]["fieldPath"].as<std::string>("");
        env[e["name"].as<std::string>()] =
            field == "metadata.name" ? pod.name : field == "status.podIP" ? pod.ip : e["value"].as<std::string>("");
      }
      pod.argv = {ZerorlBin()};
      for (const auto& a : c["args"]) pod.argv.push_back(localize(ExpandEnvVars(a.as<std::string>(), env)));
      if (pod.argv.size() > 2) pod.role = pod.argv[2];
      pod.grpc_port = NamedPort(c, "grpc");
      pod.health_port = NamedPort(c, "health");
    }
  }
  return out;
}

LoopbackPod* LoopbackDeployment::Find(const std::string& name) {
  for (auto& p : pods_) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

std::string LoopbackDeployment::Address(const LoopbackPod& pod) const {
  return absl::StrCat(pod.ip, ":", pod.grpc_port);
}

absl::Status LoopbackDeployment::Start(LoopbackPod& pod, std::chrono::milliseconds timeout) {
  pod.process = std::make_unique<Subprocess>();
  if (!pod.process->Start(pod.argv, pod.log)) return absl::InternalError("cannot start " + pod.name);
  if (!pod.process->WaitForLine("listening ", timeout).has_value()) {
    return absl::DeadlineExceededError(absl::StrCat(pod.name, " did not start listening; its log:\n", LogTail(pod)));
  }
  return absl::OkStatus();
}

void LoopbackDeployment::Kill(LoopbackPod& pod) {
  if (!pod.process || !pod.process->running()) return;
  pod.process->Signal(SIGKILL);
  pod.process->Wait(std::chrono::seconds(10));
}

std::vector<std::string> LoopbackDeployment::StopAll() {
  std::vector<std::string> bad;
  for (auto& p : pods_) {
    if (p.process && p.process->running()) p.process->Signal(SIGTERM);
  }
  for (auto& p : pods_) {
    if (!p.process || !p.process->running()) continue;
    const int rc = p.process->Wait(std::chrono::seconds(30));
    if (rc != 0) bad.push_back(absl::StrCat(p.name, " exited ", rc));
  }
  return bad;
}

absl::Status LoopbackDeployment::UpdateConfigMapFile(const LoopbackPod& pod, const std::string& mount_path,
                                                      const std::string& key, const std::string& text) {
  const std::string dir = pod.root + mount_path;
  if (!std::filesystem::is_symlink(dir + "/..data")) return absl::NotFoundError(dir + " is not a ConfigMap volume");
  std::map<std::string, std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/..data/")) {
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    files[e.path().filename().string()] = ss.str();
  }
  files[key] = text;
  WriteAtomicVolume(dir, files);
  return absl::OkStatus();
}

std::string LoopbackDeployment::LogTail(const LoopbackPod& pod, size_t bytes) const { return FileTail(pod.log, bytes); }

}  // namespace zerorl::testing
