#include "tests/k8s/rendered_manifests.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace zerorl::testing {

absl::StatusOr<RenderedManifests> ParseRenderedManifests(const std::string& yaml) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(yaml);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("rendered manifests are not YAML: ", e.what()));
  }
  RenderedManifests m;
  for (const YAML::Node& d : docs) {
    const std::string kind = d["kind"].as<std::string>("");
    const std::string name = d["metadata"]["name"].as<std::string>("");
    if (kind == "Namespace") m.ns = name;
    if (kind == "ConfigMap") {
      for (const auto& kv : d["data"]) m.config_maps[name][kv.first.as<std::string>()] = kv.second.as<std::string>();
    }
    if (kind == "Secret") {
      for (const auto& kv : d["stringData"]) m.secrets[name][kv.first.as<std::string>()] = kv.second.as<std::string>();
    }
    if (kind == "Deployment" || kind == "StatefulSet") m.workloads.push_back(d);
    if (kind == "Pod" || kind == "DaemonSet" || kind == "Job" || kind == "ReplicaSet") {
      return absl::UnimplementedError(
          absl::StrCat(name, ": the test kubelets run Deployments and StatefulSets, not a ", kind));
    }
  }
  if (m.config_maps.count("zerorl-config") && m.config_maps["zerorl-config"].count("run.yaml")) {
    try {
      const YAML::Node run = YAML::Load(m.config_maps["zerorl-config"]["run.yaml"]);
      if (run["kubernetes"] && run["kubernetes"]["cluster_domain"]) {
        m.cluster_domain = run["kubernetes"]["cluster_domain"].as<std::string>();
      }
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("ConfigMap zerorl-config run.yaml is not YAML: ", e.what()));
    }
  }
  return m;
}

std::vector<PodName> PodNames(const RenderedManifests& m) {
  std::vector<PodName> out;
  for (size_t w = 0; w < m.workloads.size(); ++w) {
    const YAML::Node& wl = m.workloads[w];
    const std::string name = wl["metadata"]["name"].as<std::string>();
    const bool sts = wl["kind"].as<std::string>() == "StatefulSet";
    const int replicas = wl["spec"]["replicas"].as<int>(1);
    const std::string service = sts ? wl["spec"]["serviceName"].as<std::string>() : name;
    const std::string service_host = absl::StrCat(service, ".", m.ns, ".svc.", m.cluster_domain);
    for (int i = 0; i < replicas; ++i) {
      PodName pod;
      pod.name = sts || replicas > 1 ? absl::StrCat(name, "-", i) : name;
      pod.workload = w;
      pod.replica = i;
      if (i == 0) pod.dns_names.push_back(service_host);
      if (sts) pod.dns_names.push_back(absl::StrCat(pod.name, ".", service_host));
      out.push_back(std::move(pod));
    }
  }
  return out;
}

std::string ExpandEnvVars(std::string text, const std::map<std::string, std::string>& env) {
  for (const auto& [k, v] : env) text = absl::StrReplaceAll(text, {{"$(" + k + ")", v}});
  return text;
}

int NamedPort(const YAML::Node& container, const std::string& name) {
  for (const auto& p : container["ports"]) {
    if (p["name"].as<std::string>("") == name) return p["containerPort"].as<int>();
  }
  return 0;
}

std::string FileTail(const std::string& path, size_t bytes) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > bytes ? s.substr(s.size() - bytes) : s;
}

}  // namespace zerorl::testing
