#include "common/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <charconv>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <vector>

#include <sys/stat.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"
#include "common/proto_enum.h"
#include "common/status.h"

namespace zerorl {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

class YamlReader {
 public:
  explicit YamlReader(absl::string_view source) : source_(source) {}

  absl::Status Error(const YAML::Node& node, const std::string& path, absl::string_view what) const {
    std::string where = source_;
    if (node.Mark().line >= 0) absl::StrAppend(&where, ":", node.Mark().line + 1);
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", path.empty() ? "(top level)" : path, ": ", what));
  }

  absl::Status ReadMessage(const YAML::Node& node, const std::string& path, Message* msg) const {
    if (node.IsNull()) return absl::OkStatus();
    if (!node.IsMap()) return Error(node, path, "expected a mapping of keys");
    const Descriptor* d = msg->GetDescriptor();
    std::map<std::string, int> seen;  // key -> 1-based line of its first occurrence
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar()) return Error(it->first, path, "keys must be plain names");
      const std::string key = it->first.Scalar();
      const std::string child = path.empty() ? key : absl::StrCat(path, ".", key);
      if (auto s = CheckDuplicate(it->first, child, &seen); !s.ok()) return s;
      const FieldDescriptor* f = d->FindFieldByName(key);
      if (f == nullptr) {
        std::vector<std::string> known;
        for (int i = 0; i < d->field_count(); ++i) known.push_back(d->field(i)->name());
        return Error(it->first, child,
                     absl::StrCat("unknown key (known keys: ", absl::StrJoin(known, ", "), ")"));
      }
      if (f->is_map()) {
        if (auto s = ReadMap(it->second, child, msg, f); !s.ok()) return s;
      } else if (f->is_repeated()) {
        if (auto s = ReadRepeated(it->second, child, msg, f); !s.ok()) return s;
      } else {
        if (it->second.IsNull()) continue;
        if (auto s = ReadSingular(it->second, child, msg, f); !s.ok()) return s;
      }
    }
    return absl::OkStatus();
  }

 private:
  // A key given twice in one mapping: YAML would silently keep one of them.
  absl::Status CheckDuplicate(const YAML::Node& key, const std::string& path,
                              std::map<std::string, int>* seen) const {
    const int line = key.Mark().line + 1;
    auto [it, inserted] = seen->emplace(key.Scalar(), line);
    if (inserted) return absl::OkStatus();
    return Error(key, path, absl::StrCat("duplicate key (first given on line ", it->second, ")"));
  }

  static std::string TypeName(const FieldDescriptor* f) {
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_INT64:
        return "integer";
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_UINT64:
        return "non-negative integer";
      case FieldDescriptor::CPPTYPE_DOUBLE:
      case FieldDescriptor::CPPTYPE_FLOAT:
        return "number";
      case FieldDescriptor::CPPTYPE_BOOL:
        return "boolean (true or false)";
      case FieldDescriptor::CPPTYPE_STRING:
        return "string";
      case FieldDescriptor::CPPTYPE_ENUM:
        return "one of " + EnumChoices(f->enum_type());
      case FieldDescriptor::CPPTYPE_MESSAGE:
        return "mapping";
    }
    return "value";
  }

  template <typename T>
  static bool ParseInt(const std::string& s, T* out) {
    const char* b = s.data();
    const char* e = b + s.size();
    if (b != e && *b == '+') ++b;
    auto r = std::from_chars(b, e, *out);
    return r.ec == std::errc() && r.ptr == e && b != e;
  }

  // A finite decimal number. YAML's .inf/.nan and strtod's "-nan", "inf",
  // hex floats and out-of-range values are refused: no setting takes them.
  static bool ParseDouble(const std::string& s, double* out) {
    if (s.empty()) return false;
    for (char ch : s) {
      if (!(absl::ascii_isdigit(ch) || ch == '.' || ch == '-' || ch == '+' || ch == 'e' || ch == 'E')) return false;
    }
    char* end = nullptr;
    errno = 0;
    *out = std::strtod(s.c_str(), &end);
    return end == s.c_str() + s.size() && errno == 0 && std::isfinite(*out);
  }

  static bool ParseBool(const std::string& s, bool* out) {
    std::string t = absl::AsciiStrToLower(s);
    if (t == "true" || t == "yes" || t == "on") { *out = true; return true; }
    if (t == "false" || t == "no" || t == "off") { *out = false; return true; }
    return false;
  }

  absl::Status ReadScalarValue(const YAML::Node& node, const std::string& path, Message* msg,
                               const FieldDescriptor* f, bool add) const {
    const Reflection* r = msg->GetReflection();
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      Message* sub = add ? r->AddMessage(msg, f) : r->MutableMessage(msg, f);
      return ReadMessage(node, path, sub);
    }
    if (!node.IsScalar()) return Error(node, path, "expected " + TypeName(f) + ", got a " +
                                                       (node.IsMap() ? "mapping" : "list"));
    const std::string& s = node.Scalar();
    auto bad = [&]() {
      const std::string t = absl::AsciiStrToLower(s);
      const bool non_finite = (f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE ||
                               f->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT) &&
                              (absl::StrContains(t, "nan") || absl::StrContains(t, "inf") ||
                               absl::ascii_isdigit(t.empty() ? 'x' : t.back()));
      return Error(node, path, absl::StrCat("expected ", non_finite ? "a finite number" : TypeName(f), ", got \"", s, "\""));
    };
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: {
        int32_t v;
        if (!ParseInt(s, &v)) return bad();
        add ? r->AddInt32(msg, f, v) : r->SetInt32(msg, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_INT64: {
        int64_t v;
        if (!ParseInt(s, &v)) return bad();
        add ? r->AddInt64(msg, f, v) : r->SetInt64(msg, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_UINT32: {
        uint32_t v;
        if (!ParseInt(s, &v)) return bad();
        add ? r->AddUInt32(msg, f, v) : r->SetUInt32(msg, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_UINT64: {
        uint64_t v;
        if (!ParseInt(s, &v)) return bad();
        add ? r->AddUInt64(msg, f, v) : r->SetUInt64(msg, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_DOUBLE: {
        double v;
        if (!ParseDouble(s, &v)) return bad();
        add ? r->AddDouble(msg, f, v) : r->SetDouble(msg, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_FLOAT: {
        double v;
        if (!ParseDouble(s, &v) || !std::isfinite(static_cast<float>(v))) return bad();
        add ? r->AddFloat(msg, f, static_cast<float>(v)) : r->SetFloat(msg, f, static_cast<float>(v));
        break;
      }
      case FieldDescriptor::CPPTYPE_BOOL: {
        bool v;
        if (!ParseBool(s, &v)) return bad();
        add ? r->AddBool(msg, f, v) : r->SetBool(msg, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_STRING:
        add ? r->AddString(msg, f, s) : r->SetString(msg, f, s);
        break;
      case FieldDescriptor::CPPTYPE_ENUM: {
        const EnumValueDescriptor* v = FindEnumValue(f->enum_type(), s);
        if (v == nullptr || v->number() == 0) return bad();
        add ? r->AddEnum(msg, f, v) : r->SetEnum(msg, f, v);
        break;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        break;
    }
    return absl::OkStatus();
  }

  absl::Status ReadSingular(const YAML::Node& node, const std::string& path, Message* msg,
                            const FieldDescriptor* f) const {
    return ReadScalarValue(node, path, msg, f, /*add=*/false);
  }

  absl::Status ReadRepeated(const YAML::Node& node, const std::string& path, Message* msg,
                            const FieldDescriptor* f) const {
    msg->GetReflection()->ClearField(msg, f);
    if (node.IsNull()) return absl::OkStatus();
    if (!node.IsSequence()) return Error(node, path, "expected a list of " + TypeName(f));
    for (size_t i = 0; i < node.size(); ++i) {
      if (auto s = ReadScalarValue(node[i], absl::StrCat(path, "[", i, "]"), msg, f, true); !s.ok())
        return s;
    }
    return absl::OkStatus();
  }

  absl::Status ReadMap(const YAML::Node& node, const std::string& path, Message* msg,
                       const FieldDescriptor* f) const {
    msg->GetReflection()->ClearField(msg, f);
    if (node.IsNull()) return absl::OkStatus();
    if (!node.IsMap()) return Error(node, path, "expected a mapping");
    const Descriptor* entry = f->message_type();
    const FieldDescriptor* kf = entry->FindFieldByName("key");
    const FieldDescriptor* vf = entry->FindFieldByName("value");
    std::map<std::string, int> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar()) return Error(it->first, path, "keys must be plain values");
      const std::string child = absl::StrCat(path, ".", it->first.Scalar());
      if (auto s = CheckDuplicate(it->first, child, &seen); !s.ok()) return s;
      Message* e = msg->GetReflection()->AddMessage(msg, f);
      if (auto s = ReadScalarValue(it->first, child, e, kf, false); !s.ok()) return s;
      if (auto s = ReadScalarValue(it->second, child, e, vf, false); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  std::string source_;
};

void EmitValue(YAML::Emitter& out, const Message& msg, const FieldDescriptor* f, int index);

// The shortest decimal text (at least `digits` significant digits tried first)
// that parses back to the same value: 0.1 prints as "0.1", not 0.10000000000000001.
std::string ShortestDouble(double v, int digits) {
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  if (std::isnan(v)) return ".nan";
  char buf[40];
  for (int d = digits; d <= 17; ++d) {
    std::snprintf(buf, sizeof(buf), "%.*g", d, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;
  // Keep it a YAML float even when integral ("1" -> "1.0") so it reads back as a number.
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

void EmitMessage(YAML::Emitter& out, const Message& msg) {
  const Reflection* r = msg.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(msg, &fields);
  out << YAML::BeginMap;
  for (const FieldDescriptor* f : fields) {
    out << YAML::Key << f->name() << YAML::Value;
    if (f->is_map()) {
      out << YAML::BeginMap;
      for (int i = 0; i < r->FieldSize(msg, f); ++i) {
        const Message& e = r->GetRepeatedMessage(msg, f, i);
        const FieldDescriptor* kf = e.GetDescriptor()->FindFieldByName("key");
        const FieldDescriptor* vf = e.GetDescriptor()->FindFieldByName("value");
        out << YAML::Key;
        EmitValue(out, e, kf, -1);
        out << YAML::Value;
        EmitValue(out, e, vf, -1);
      }
      out << YAML::EndMap;
    } else if (f->is_repeated()) {
      out << YAML::BeginSeq;
      for (int i = 0; i < r->FieldSize(msg, f); ++i) EmitValue(out, msg, f, i);
      out << YAML::EndSeq;
    } else {
      EmitValue(out, msg, f, -1);
    }
  }
  out << YAML::EndMap;
}

void EmitValue(YAML::Emitter& out, const Message& msg, const FieldDescriptor* f, int i) {
  const Reflection* r = msg.GetReflection();
  const bool rep = i >= 0;
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      out << (rep ? r->GetRepeatedInt32(msg, f, i) : r->GetInt32(msg, f));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      out << (rep ? r->GetRepeatedInt64(msg, f, i) : r->GetInt64(msg, f));
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      out << (rep ? r->GetRepeatedUInt32(msg, f, i) : r->GetUInt32(msg, f));
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      out << (rep ? r->GetRepeatedUInt64(msg, f, i) : r->GetUInt64(msg, f));
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      out << ShortestDouble(rep ? r->GetRepeatedDouble(msg, f, i) : r->GetDouble(msg, f), 15);
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      out << ShortestDouble(rep ? r->GetRepeatedFloat(msg, f, i) : r->GetFloat(msg, f), 6);
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      out << (rep ? r->GetRepeatedBool(msg, f, i) : r->GetBool(msg, f));
      break;
    case FieldDescriptor::CPPTYPE_STRING:
      out << YAML::DoubleQuoted << (rep ? r->GetRepeatedString(msg, f, i) : r->GetString(msg, f));
      break;
    case FieldDescriptor::CPPTYPE_ENUM: {
      out << EnumShortName(rep ? r->GetRepeatedEnum(msg, f, i) : r->GetEnum(msg, f));
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      EmitMessage(out, rep ? r->GetRepeatedMessage(msg, f, i) : r->GetMessage(msg, f));
      break;
  }
}

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory, not a file"));
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == EACCES) return absl::PermissionDeniedError(absl::StrCat(path, ": permission denied"));
    return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::Status MergeYamlInto(absl::string_view text, absl::string_view source, Message* msg) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", e.mark.line + 1, ": invalid YAML: ", e.msg));
  }
  std::unique_ptr<Message> scratch(msg->New());
  scratch->CopyFrom(*msg);
  YamlReader reader(source);
  if (auto s = reader.ReadMessage(root, "", scratch.get()); !s.ok()) return s;
  msg->CopyFrom(*scratch);
  return absl::OkStatus();
}

absl::Status MergeYamlFileInto(const std::string& path, Message* msg) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  return MergeYamlInto(*text, path, msg);
}

zerorl::v1::RunConfig DefaultRunConfig() {
  zerorl::v1::RunConfig c;
  c.set_run_id("run");
  c.mutable_model()->set_tokenizer("auto");
  c.mutable_model()->set_device("cpu");
  auto* d = c.mutable_dataset();
  d->set_kind(zerorl::v1::DATASET_KIND_COUNTDOWN);
  d->set_eval_fraction(0.05);
  d->set_template_(zerorl::v1::PROMPT_TEMPLATE_R1ZERO);
  d->set_shuffle(true);
  d->set_max_prompt_tokens(512);
  auto* r = c.mutable_rollout();
  r->set_group_size(8);
  r->set_prompts_per_step(16);
  r->set_max_batch_sequences(256);
  r->set_mla_cache("latent");
  r->set_listen_port(50052);
  auto* s = r->mutable_sampling();
  s->set_temperature(1.0f);
  s->set_top_p(1.0f);
  s->set_max_new_tokens(256);
  auto* rw = c.mutable_reward();
  rw->set_watch_spec(true);
  rw->set_listen_port(50053);
  auto* sb = rw->mutable_sandbox();
  sb->set_cpu_seconds(2);
  sb->set_memory_mb(512);
  sb->set_wall_ms(4000);
  sb->set_max_output_bytes(1 << 20);
  sb->set_max_processes(16);
  sb->set_max_file_bytes(16 << 20);
  sb->set_python("/usr/bin/python3");
  sb->set_isolation("auto");
  auto* b = c.mutable_buffer();
  b->set_max_request_bytes(64 << 20);
  b->set_max_page_size(1000);
  b->set_lease_seconds(600);
  b->set_listen_port(50054);
  auto* l = c.mutable_learner();
  auto* g = l->mutable_grpo();
  g->set_clip_low(0.2);
  g->set_clip_high(0.28);
  g->set_beta(0.0);
  g->set_loss_aggregation(zerorl::v1::LOSS_AGGREGATION_DAPO);
  g->set_std_normalize(true);
  g->set_epochs(1);
  g->set_micro_batch(16);
  g->mutable_overlong()->set_buffer_tokens(64);
  g->mutable_overlong()->set_penalty(1.0);
  g->set_router_bias_gamma(0.001);
  g->set_adv_eps(1e-6);
  g->set_is_correction(zerorl::v1::IMPORTANCE_CORRECTION_NONE);
  g->set_is_level(zerorl::v1::IMPORTANCE_LEVEL_TOKEN);
  g->set_is_cap(2.0);
  g->set_is_mask_low(0.5);
  auto* o = l->mutable_optimizer();
  o->set_lr(1e-5);
  o->set_beta1(0.9);
  o->set_beta2(0.99);
  o->set_eps(1e-8);
  o->set_grad_clip(1.0);
  o->set_min_lr_ratio(0.1);
  l->mutable_checkpoint()->set_every_steps(10);
  l->mutable_checkpoint()->set_keep_last(3);
  l->set_publish_every(1);
  l->set_listen_port(50055);
  l->set_weight_chunk_bytes(4 << 20);
  l->set_weight_transport("grpc");
  auto* orc = c.mutable_orchestrator();
  orc->set_total_steps(100);
  orc->set_mode(zerorl::v1::RUN_MODE_SYNC);
  orc->set_max_staleness(1);
  orc->mutable_eval()->set_every_steps(10);
  orc->mutable_eval()->set_temperature(1.0f);
  orc->set_heartbeat_ms(2000);
  orc->set_call_deadline_ms(600000);
  orc->set_max_retries(3);
  orc->set_outage_seconds(300);
  orc->set_listen_port(50051);
  orc->set_progress(true);
  auto* sv = c.mutable_server();
  sv->set_max_message_mb(64);
  sv->set_bind_host("0.0.0.0");
  auto* k = c.mutable_kubernetes();
  k->set_image("zerorl:latest");
  k->set_namespace_("zerorl");
  k->set_rollout_replicas(2);
  k->set_reward_replicas(2);
  k->set_storage_size("10Gi");
  k->set_image_pull_policy("IfNotPresent");
  k->set_cluster_domain("cluster.local");
  k->set_state_size("10Gi");
  return c;
}

absl::StatusOr<int> ParseDevice(absl::string_view device, absl::string_view key) {
  if (device.empty() || device == "cpu") return -1;
  if (device == "cuda") return 0;
  const absl::string_view digits = absl::StartsWith(device, "cuda:") ? device.substr(5) : absl::string_view();
  int n = 0;
  bool ok = !digits.empty() && digits.size() <= 4;
  for (char ch : digits) {
    ok = ok && absl::ascii_isdigit(ch);
    n = n * 10 + (ch - '0');
  }
  if (!ok)
    return absl::InvalidArgumentError(
        absl::StrCat(key, ": \"", device, "\" is not a device; expected \"cpu\", \"cuda\" or \"cuda:N\" (N >= 0)"));
  return n;
}

namespace {

// model.device and learner.data_parallel_devices: each parses; the replicas
// are all cpu or distinct cuda devices.
absl::Status ValidateDevices(const zerorl::v1::RunConfig& c) {
  if (auto d = ParseDevice(c.model().device(), "model.device"); !d.ok()) return d.status();
  const auto& dp = c.learner().data_parallel_devices();
  std::vector<int> seen;
  for (int i = 0; i < dp.size(); ++i) {
    const std::string key = absl::StrCat("learner.data_parallel_devices[", i, "]");
    auto d = ParseDevice(dp[i], key);
    if (!d.ok()) return d.status();
    if (i > 0 && (*d < 0) != (seen[0] < 0))
      return absl::InvalidArgumentError(absl::StrCat(key, ": \"", dp[i], "\" mixes cpu and cuda replicas"));
    if (*d >= 0 && std::find(seen.begin(), seen.end(), *d) != seen.end())
      return absl::InvalidArgumentError(absl::StrCat(key, ": cuda:", *d, " is listed twice (one replica per GPU)"));
    seen.push_back(*d);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckFinite(const Message& msg, absl::string_view prefix) {
  const Reflection* r = msg.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(msg, &fields);
  for (const FieldDescriptor* f : fields) {
    const std::string key = prefix.empty() ? f->name() : absl::StrCat(prefix, ".", f->name());
    const int n = f->is_repeated() ? r->FieldSize(msg, f) : 1;
    for (int i = 0; i < n; ++i) {
      const std::string at = f->is_repeated() ? absl::StrCat(key, "[", i, "]") : key;
      double v = 0;
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_DOUBLE:
          v = f->is_repeated() ? r->GetRepeatedDouble(msg, f, i) : r->GetDouble(msg, f);
          break;
        case FieldDescriptor::CPPTYPE_FLOAT:
          v = f->is_repeated() ? r->GetRepeatedFloat(msg, f, i) : r->GetFloat(msg, f);
          break;
        case FieldDescriptor::CPPTYPE_MESSAGE:
          if (f->is_map()) break;
          if (auto s = CheckFinite(f->is_repeated() ? r->GetRepeatedMessage(msg, f, i) : r->GetMessage(msg, f), at);
              !s.ok())
            return s;
          break;
        default:
          break;
      }
      if (!std::isfinite(v)) return absl::InvalidArgumentError(absl::StrCat(at, ": must be a finite number, got ", v));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateRunId(absl::string_view id, absl::string_view key) {
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": \"", id, "\" ", what));
  };
  if (id.empty()) return absl::InvalidArgumentError(absl::StrCat(key, ": must not be empty"));
  if (id.size() > 64) return bad("is longer than 64 characters");
  if (id == "." || id == "..") return bad("is not a plain name (it names directories)");
  for (char ch : id) {
    if (!(absl::ascii_isalnum(ch) || ch == '-' || ch == '_' || ch == '.'))
      return bad("may only contain letters, digits, '-', '_' and '.'");
  }
  return absl::OkStatus();
}

absl::Status ValidateThreads(int64_t threads, absl::string_view key) {
  if (threads < 0 || threads > kMaxThreads)
    return absl::InvalidArgumentError(
        absl::StrCat(key, ": ", threads, " threads; expected 0 (all cores) to ", kMaxThreads));
  return absl::OkStatus();
}

absl::Status ValidatePort(int64_t port, absl::string_view key, bool allow_zero) {
  if ((port == 0 && allow_zero) || (port >= 1 && port <= 65535)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(key, ": port ", port, " is out of range (", allow_zero ? "0 or " : "", "1..65535)"));
}

absl::Status ValidateAddress(absl::string_view address, absl::string_view key) {
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": \"", address, "\" ", what));
  };
  if (address.empty()) return absl::InvalidArgumentError(absl::StrCat(key, ": must not be empty"));
  if (absl::StartsWith(address, "unix:") || absl::StartsWith(address, "unix-abstract:"))
    return address.find(':') + 1 < address.size() ? absl::OkStatus() : bad("names no socket path");
  absl::string_view hostport = address;
  if (const size_t scheme = address.find(':'); scheme != absl::string_view::npos &&
                                               address.substr(scheme).rfind("://", 0) == 0) {
    hostport = address.substr(scheme + 3);  // dns:///host:port, ipv4://host:port
    if (const size_t slash = hostport.find('/'); slash != absl::string_view::npos)
      hostport = hostport.substr(slash + 1);
  }
  const size_t colon = hostport.rfind(':');
  if (colon == absl::string_view::npos) return bad("has no port (expected HOST:PORT)");
  absl::string_view host = hostport.substr(0, colon), port = hostport.substr(colon + 1);
  if (host.empty() || host == "[]") return bad("has no host (expected HOST:PORT)");
  if (absl::StrContains(host, ':') && !(absl::StartsWith(host, "[") && absl::EndsWith(host, "]")))
    return bad("has an IPv6 host without brackets (expected [::1]:PORT)");
  int64_t p = 0;
  if (port.empty() || port.size() > 5) return bad("has no valid port (expected 1..65535)");
  for (char ch : port) {
    if (!absl::ascii_isdigit(ch)) return bad("has no valid port (expected 1..65535)");
    p = p * 10 + (ch - '0');
  }
  if (p < 1 || p > 65535) return bad("has a port out of range (expected 1..65535)");
  return absl::OkStatus();
}

namespace {

// Range checks of every field, in declaration order; the first failure wins.
// Zero is a value like any other: where a field cannot take it, it is refused
// here by name, never replaced by the default.
class RangeCheck {
 public:
  template <typename T>
  RangeCheck& AtLeast(absl::string_view key, T v, T min) {
    if (ok() && !(v >= min)) Fail(key, absl::StrCat("must be >= ", min, ", got ", v));
    return *this;
  }
  template <typename T>
  RangeCheck& Between(absl::string_view key, T v, T lo, T hi, bool hi_open = false) {
    if (ok() && !(v >= lo && (hi_open ? v < hi : v <= hi)))
      Fail(key, absl::StrCat("must be in [", lo, ", ", hi, hi_open ? ")" : "]", ", got ", v));
    return *this;
  }
  RangeCheck& Positive(absl::string_view key, double v) {
    if (ok() && !(v > 0)) Fail(key, absl::StrCat("must be > 0, got ", v));
    return *this;
  }
  RangeCheck& Port(absl::string_view key, int64_t v, bool allow_zero) {
    if (ok()) status_ = ValidatePort(v, key, allow_zero);
    return *this;
  }
  RangeCheck& Status(absl::Status s) {
    if (ok()) status_ = std::move(s);
    return *this;
  }
  bool ok() const { return status_.ok(); }
  absl::Status status() const { return status_; }

 private:
  void Fail(absl::string_view key, absl::string_view what) {
    status_ = absl::InvalidArgumentError(absl::StrCat(key, ": ", what));
  }
  absl::Status status_;
};

}  // namespace

absl::Status FinalizeRunConfig(zerorl::v1::RunConfig* c) {
  auto bad = [](absl::string_view key, absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": ", what));
  };
  ZRL_RETURN_IF_ERROR(ValidateRunId(c->run_id(), "run_id"));
  ZRL_RETURN_IF_ERROR(CheckFinite(*c, ""));
  if (c->run_dir().empty()) c->set_run_dir(absl::StrCat("runs/", c->run_id()));
  if (c->buffer().path().empty()) c->mutable_buffer()->set_path(c->run_dir() + "/buffer");
  if (c->learner().checkpoint().dir().empty())
    c->mutable_learner()->mutable_checkpoint()->set_dir(c->run_dir() + "/checkpoints");
  RangeCheck k;
  k.Status(ValidateThreads(c->model().threads(), "model.threads"));
  const auto& d = c->dataset();
  k.Between("dataset.eval_fraction", d.eval_fraction(), 0.0, 1.0, /*hi_open=*/true)
      .AtLeast("dataset.max_prompt_tokens", d.max_prompt_tokens(), 0);
  const auto& ro = c->rollout();
  k.AtLeast("rollout.group_size", ro.group_size(), 1)
      .AtLeast("rollout.prompts_per_step", ro.prompts_per_step(), 1)
      .AtLeast("rollout.max_batch_sequences", ro.max_batch_sequences(), 1)
      .AtLeast("rollout.kv_cache_mb", ro.kv_cache_mb(), int64_t{0})
      .Port("rollout.listen_port", ro.listen_port(), true);
  if (c->rollout().mla_cache().empty()) c->mutable_rollout()->set_mla_cache("latent");
  if (c->rollout().mla_cache() != "latent" && c->rollout().mla_cache() != "expanded")
    return bad("rollout.mla_cache", absl::StrCat("must be \"latent\" or \"expanded\", got \"",
                                                 c->rollout().mla_cache(), "\""));
  const auto& s = ro.sampling();
  k.AtLeast("rollout.sampling.temperature", s.temperature(), 0.0f);
  if (k.ok() && !(s.top_p() > 0 && s.top_p() <= 1)) return bad("rollout.sampling.top_p", "must be in (0, 1]");
  k.AtLeast("rollout.sampling.top_k", s.top_k(), 0).AtLeast("rollout.sampling.max_new_tokens", s.max_new_tokens(), 1);
  const auto& rw = c->reward();
  const auto& sb = rw.sandbox();
  k.Status(ValidateThreads(rw.threads(), "reward.threads"))
      .Port("reward.listen_port", rw.listen_port(), true)
      .Positive("reward.sandbox.cpu_seconds", sb.cpu_seconds())
      .AtLeast("reward.sandbox.memory_mb", sb.memory_mb(), int64_t{1})
      .AtLeast("reward.sandbox.wall_ms", sb.wall_ms(), int64_t{1})
      .AtLeast("reward.sandbox.max_output_bytes", sb.max_output_bytes(), int64_t{1})
      .AtLeast("reward.sandbox.max_processes", sb.max_processes(), 1)
      .AtLeast("reward.sandbox.max_file_bytes", sb.max_file_bytes(), int64_t{1});
  const auto& b = c->buffer();
  k.AtLeast("buffer.keep_last_steps", b.keep_last_steps(), 0)
      .AtLeast("buffer.keep_bytes", b.keep_bytes(), int64_t{0})
      .AtLeast("buffer.max_request_bytes", b.max_request_bytes(), int64_t{1})
      .AtLeast("buffer.max_page_size", b.max_page_size(), 1)
      .AtLeast("buffer.lease_seconds", b.lease_seconds(), 1)
      .Port("buffer.listen_port", b.listen_port(), true);
  const auto& g = c->learner().grpo();
  k.Between("learner.grpo.clip_low", g.clip_low(), 0.0, 1.0, /*hi_open=*/true)
      .AtLeast("learner.grpo.clip_high", g.clip_high(), 0.0)
      .AtLeast("learner.grpo.beta", g.beta(), 0.0)
      .AtLeast("learner.grpo.epochs", g.epochs(), 1)
      .AtLeast("learner.grpo.micro_batch", g.micro_batch(), 1)
      .AtLeast("learner.grpo.overlong.buffer_tokens", g.overlong().buffer_tokens(), 1)
      .AtLeast("learner.grpo.overlong.penalty", g.overlong().penalty(), 0.0)
      .AtLeast("learner.grpo.router_bias_gamma", g.router_bias_gamma(), 0.0)
      .AtLeast("learner.grpo.balance_loss_alpha", g.balance_loss_alpha(), 0.0)
      .Positive("learner.grpo.adv_eps", g.adv_eps())
      .Positive("learner.grpo.is_cap", g.is_cap())
      .AtLeast("learner.grpo.is_mask_low", g.is_mask_low(), 0.0);
  if (k.ok() && g.is_correction() == zerorl::v1::IMPORTANCE_CORRECTION_MIS && !(g.is_mask_low() < g.is_cap()))
    return bad("learner.grpo.is_mask_low",
               absl::StrCat("must be below learner.grpo.is_cap (", g.is_cap(), ") with is_correction: mis, got ",
                            g.is_mask_low()));
  const auto& o = c->learner().optimizer();
  k.AtLeast("learner.optimizer.lr", o.lr(), 0.0)
      .Between("learner.optimizer.beta1", o.beta1(), 0.0, 1.0, /*hi_open=*/true)
      .Between("learner.optimizer.beta2", o.beta2(), 0.0, 1.0, /*hi_open=*/true)
      .Positive("learner.optimizer.eps", o.eps())
      .AtLeast("learner.optimizer.weight_decay", o.weight_decay(), 0.0)
      .AtLeast("learner.optimizer.grad_clip", o.grad_clip(), 0.0)
      .AtLeast("learner.optimizer.warmup_steps", o.warmup_steps(), 0)
      .Between("learner.optimizer.min_lr_ratio", o.min_lr_ratio(), 0.0, 1.0);
  const auto& l = c->learner();
  k.AtLeast("learner.checkpoint.every_steps", l.checkpoint().every_steps(), 0)
      .AtLeast("learner.checkpoint.keep_last", l.checkpoint().keep_last(), 0)
      .AtLeast("learner.publish_every", l.publish_every(), 1)
      .Port("learner.listen_port", l.listen_port(), true)
      .AtLeast("learner.weight_chunk_bytes", l.weight_chunk_bytes(), 1024);
  const auto& oc = c->orchestrator();
  k.AtLeast("orchestrator.total_steps", oc.total_steps(), 0)
      .AtLeast("orchestrator.outage_seconds", oc.outage_seconds(), 0)
      .AtLeast("orchestrator.max_staleness", oc.max_staleness(), 0)
      .AtLeast("orchestrator.eval.every_steps", oc.eval().every_steps(), 0)
      .AtLeast("orchestrator.eval.prompts", oc.eval().prompts(), 0)
      .AtLeast("orchestrator.eval.pass_k", oc.eval().pass_k(), 0)
      .AtLeast("orchestrator.eval.temperature", oc.eval().temperature(), 0.0f)
      .Port("orchestrator.metrics_port", oc.metrics_port(), true)
      .AtLeast("orchestrator.heartbeat_ms", oc.heartbeat_ms(), 1)
      .AtLeast("orchestrator.call_deadline_ms", oc.call_deadline_ms(), 1)
      .AtLeast("orchestrator.max_retries", oc.max_retries(), 0)
      .Port("orchestrator.listen_port", oc.listen_port(), true);
  const auto& sv = c->server();
  k.Between("server.max_message_mb", sv.max_message_mb(), 1, 2047).Port("server.health_port", sv.health_port(), true);
  const auto& kc = c->kubernetes();
  k.AtLeast("kubernetes.rollout_replicas", kc.rollout_replicas(), 0)
      .AtLeast("kubernetes.reward_replicas", kc.reward_replicas(), 0)
      .AtLeast("kubernetes.rollout_gpus", kc.rollout_gpus(), 0)
      .AtLeast("kubernetes.learner_gpus", kc.learner_gpus(), 0);
  ZRL_RETURN_IF_ERROR(k.status());
  if (auto st = ValidateDevices(*c); !st.ok()) return st;
  for (int i = 0; i < oc.text_counters_size(); ++i) {
    const auto& tc = oc.text_counters(i);
    const std::string key = absl::StrCat("orchestrator.text_counters[", i, "]");
    const bool name_ok = !tc.name().empty() && std::all_of(tc.name().begin(), tc.name().end(), [](char ch) {
      return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
    });
    if (!name_ok) return bad(key + ".name", absl::StrCat("must be [a-z0-9_]+, got \"", tc.name(), "\""));
    for (int j = 0; j < i; ++j) {
      if (oc.text_counters(j).name() == tc.name())
        return bad(key + ".name", absl::StrCat("\"", tc.name(), "\" is also text_counters[", j, "]'s name"));
    }
    if (tc.substrings().empty()) return bad(key + ".substrings", "must name at least one substring");
    for (int j = 0; j < tc.substrings_size(); ++j) {
      if (tc.substrings(j).empty()) return bad(absl::StrCat(key, ".substrings[", j, "]"), "must not be empty");
    }
  }
  if (const std::string& wt = c->learner().weight_transport(); !wt.empty() && wt != "grpc" && wt != "nccl")
    return bad("learner.weight_transport", absl::StrCat("must be \"grpc\" or \"nccl\", got \"", wt, "\""));
  return absl::OkStatus();
}

absl::StatusOr<zerorl::v1::RunConfig> ParseRunConfig(absl::string_view yaml, absl::string_view source) {
  zerorl::v1::RunConfig c = DefaultRunConfig();
  if (auto s = MergeYamlInto(yaml, source, &c); !s.ok()) return s;
  if (auto s = FinalizeRunConfig(&c); !s.ok())
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", s.message()));
  return c;
}

absl::StatusOr<zerorl::v1::RunConfig> LoadRunConfig(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  return ParseRunConfig(*text, path);
}

std::string MessageToYaml(const Message& msg) {
  YAML::Emitter out;
  EmitMessage(out, msg);
  return std::string(out.c_str()) + "\n";
}

}  // namespace zerorl
