// In-cluster run config and its overrides-only YAML (see k8s_config.h).
#include "cli/k8s_config.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>
#include <google/protobuf/util/message_differencer.h>

#include <nlohmann/json.hpp>

#include <charconv>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "cli/k8s_yaml.h"
#include "common/config.h"
#include "common/proto_enum.h"

namespace zerorl {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using nlohmann::ordered_json;

ordered_json SetFieldsJson(const Message& m);

// The shortest decimal that reads back as `v` (0.7f is 0.7, not 0.699999988).
double ShortestFloat(float v) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  return std::strtod(std::string(buf, res.ptr).c_str(), nullptr);
}

// One value of field `f` (element `i` of a repeated field, or -1).
ordered_json ValueJson(const Message& m, const FieldDescriptor* f, int i) {
  const Reflection* r = m.GetReflection();
  const bool rep = i >= 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: return rep ? r->GetRepeatedInt32(m, f, i) : r->GetInt32(m, f);
    case FieldDescriptor::CPPTYPE_INT64: return rep ? r->GetRepeatedInt64(m, f, i) : r->GetInt64(m, f);
    case FieldDescriptor::CPPTYPE_UINT32: return rep ? r->GetRepeatedUInt32(m, f, i) : r->GetUInt32(m, f);
    case FieldDescriptor::CPPTYPE_UINT64: return rep ? r->GetRepeatedUInt64(m, f, i) : r->GetUInt64(m, f);
    case FieldDescriptor::CPPTYPE_DOUBLE: return rep ? r->GetRepeatedDouble(m, f, i) : r->GetDouble(m, f);
    case FieldDescriptor::CPPTYPE_FLOAT:
      return ShortestFloat(rep ? r->GetRepeatedFloat(m, f, i) : r->GetFloat(m, f));
    case FieldDescriptor::CPPTYPE_BOOL: return rep ? r->GetRepeatedBool(m, f, i) : r->GetBool(m, f);
    case FieldDescriptor::CPPTYPE_STRING: return rep ? r->GetRepeatedString(m, f, i) : r->GetString(m, f);
    case FieldDescriptor::CPPTYPE_ENUM:
      return EnumShortName(rep ? r->GetRepeatedEnum(m, f, i) : r->GetEnum(m, f));
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return SetFieldsJson(rep ? r->GetRepeatedMessage(m, f, i) : r->GetMessage(m, f));
  }
  return nullptr;
}

// A repeated or map field as a JSON array or object.
ordered_json FieldJson(const Message& m, const FieldDescriptor* f) {
  const Reflection* r = m.GetReflection();
  if (f->is_map()) {
    ordered_json obj = ordered_json::object();
    for (int i = 0; i < r->FieldSize(m, f); ++i) {
      const Message& e = r->GetRepeatedMessage(m, f, i);
      const FieldDescriptor* kf = e.GetDescriptor()->FindFieldByName("key");
      const FieldDescriptor* vf = e.GetDescriptor()->FindFieldByName("value");
      ordered_json key = ValueJson(e, kf, -1);
      obj[key.is_string() ? key.get<std::string>() : key.dump()] = ValueJson(e, vf, -1);
    }
    return obj;
  }
  ordered_json arr = ordered_json::array();
  for (int i = 0; i < r->FieldSize(m, f); ++i) arr.push_back(ValueJson(m, f, i));
  return arr;
}

// Every set field of `m` (proto3: non-default scalars, present messages, non-empty lists).
ordered_json SetFieldsJson(const Message& m) {
  ordered_json out = ordered_json::object();
  std::vector<const FieldDescriptor*> fields;
  m.GetReflection()->ListFields(m, &fields);
  for (const FieldDescriptor* f : fields) {
    out[f->name()] = f->is_repeated() ? FieldJson(m, f) : ValueJson(m, f, -1);
  }
  return out;
}

// Fields of `m` whose values differ from those in `def` (same type), in field order.
ordered_json DiffJson(const Message& m, const Message& def) {
  ordered_json out = ordered_json::object();
  const Reflection* r = m.GetReflection();
  const auto* d = m.GetDescriptor();
  for (int k = 0; k < d->field_count(); ++k) {
    const FieldDescriptor* f = d->field(k);
    if (f->is_repeated()) {
      ordered_json v = FieldJson(m, f);
      if (v != FieldJson(def, f)) out[f->name()] = v;
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      ordered_json v = DiffJson(r->GetMessage(m, f), def.GetReflection()->GetMessage(def, f));
      if (!v.empty()) out[f->name()] = v;
    } else {
      ordered_json v = ValueJson(m, f, -1);
      if (v != ValueJson(def, f, -1)) out[f->name()] = v;
    }
  }
  return out;
}

}  // namespace

std::string ServiceHost(const zerorl::v1::RunConfig& config, const std::string& service) {
  const auto& k = config.kubernetes();
  return absl::StrCat(service, ".", k.namespace_(), ".svc.",
                      k.cluster_domain().empty() ? "cluster.local" : k.cluster_domain());
}

zerorl::v1::RunConfig InClusterConfig(const zerorl::v1::RunConfig& config, bool has_spec_file) {
  zerorl::v1::RunConfig c = config;
  const std::string state = kPodStateDir;
  c.set_run_dir(state + "/run");
  c.mutable_buffer()->set_path(state + "/buffer");
  c.mutable_learner()->mutable_checkpoint()->set_dir(state + "/checkpoints");
  // Singletons by their service names; rollout and reward pods (StatefulSets)
  // one by one by their stable pod names, so the orchestrator's worker list is
  // static and a restarted pod comes back under the same address.
  c.mutable_orchestrator()->set_address(
      absl::StrCat(ServiceHost(c, "orchestrator"), ":", c.orchestrator().listen_port()));
  c.mutable_buffer()->set_address(absl::StrCat(ServiceHost(c, "buffer"), ":", c.buffer().listen_port()));
  c.mutable_learner()->set_address(absl::StrCat(ServiceHost(c, "learner"), ":", c.learner().listen_port()));
  c.mutable_rollout()->clear_workers();
  for (int i = 0; i < c.kubernetes().rollout_replicas(); ++i) {
    c.mutable_rollout()->add_workers(
        absl::StrCat("rollout-", i, ".", ServiceHost(c, "rollout"), ":", c.rollout().listen_port()));
  }
  c.mutable_reward()->clear_workers();
  for (int i = 0; i < c.kubernetes().reward_replicas(); ++i) {
    c.mutable_reward()->add_workers(
        absl::StrCat("reward-", i, ".", ServiceHost(c, "reward"), ":", c.reward().listen_port()));
  }
  c.mutable_orchestrator()->set_progress(false);  // no terminal in a pod
  if (c.server().health_port() == 0) c.mutable_server()->set_health_port(kDefaultHealthPort);
  c.mutable_server()->set_bind_host("0.0.0.0");
  c.mutable_server()->set_token_file(kPodTokenFile);
  c.mutable_server()->set_internal_token_file(kPodInternalTokenFile);
  if (has_spec_file) {
    c.mutable_reward()->set_spec_path(kPodRewardFile);
    c.mutable_reward()->clear_spec();
  }
  return c;
}

absl::StatusOr<std::string> ConfigOverridesYaml(const zerorl::v1::RunConfig& config) {
  const zerorl::v1::RunConfig defaults = DefaultRunConfig();
  std::string yaml = JsonToYaml(DiffJson(config, defaults));
  auto back = ParseRunConfig(yaml, "rendered run.yaml");
  if (!back.ok()) {
    return absl::InternalError(absl::StrCat("the rendered run config does not load: ", back.status().message()));
  }
  google::protobuf::util::MessageDifferencer diff;
  std::string report;
  diff.ReportDifferencesToString(&report);
  if (!diff.Compare(config, *back)) {
    return absl::InternalError(absl::StrCat("the rendered run config loads differently: ", report));
  }
  return yaml;
}

}  // namespace zerorl
