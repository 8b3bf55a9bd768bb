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
#include <memory>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"

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
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar()) return Error(it->first, path, "keys must be plain names");
      const std::string key = it->first.Scalar();
      const std::string child = path.empty() ? key : absl::StrCat(path, ".", key);
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

  static std::string EnumPrefix(const EnumDescriptor* e) {
    std::string out;
    const std::string& n = e->name();
    for (size_t i = 0; i < n.size(); ++i) {
      if (i > 0 && absl::ascii_isupper(n[i])) out.push_back('_');
      out.push_back(absl::ascii_toupper(n[i]));
    }
    return out + "_";
  }

  static std::string EnumChoices(const EnumDescriptor* e) {
    std::vector<std::string> names;
    const std::string prefix = EnumPrefix(e);
    for (int i = 0; i < e->value_count(); ++i) {
      std::string n = e->value(i)->name();
      if (n.rfind(prefix, 0) == 0) n = n.substr(prefix.size());
      if (n == "UNSPECIFIED") continue;
      names.push_back(absl::AsciiStrToLower(n));
    }
    return absl::StrJoin(names, "|");
  }

  template <typename T>
  static bool ParseInt(const std::string& s, T* out) {
    const char* b = s.data();
    const char* e = b + s.size();
    if (b != e && *b == '+') ++b;
    auto r = std::from_chars(b, e, *out);
    return r.ec == std::errc() && r.ptr == e && b != e;
  }

  static bool ParseDouble(const std::string& s, double* out) {
    if (s.empty()) return false;
    std::string t = absl::AsciiStrToLower(s);
    if (t == ".inf" || t == "+.inf") { *out = HUGE_VAL; return true; }
    if (t == "-.inf") { *out = -HUGE_VAL; return true; }
    char* end = nullptr;
    errno = 0;
    *out = std::strtod(s.c_str(), &end);
    return end == s.c_str() + s.size() && errno == 0 && !absl::ascii_isalpha(s[0]);
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
      return Error(node, path, absl::StrCat("expected ", TypeName(f), ", got \"", s, "\""));
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
        if (!ParseDouble(s, &v)) return bad();
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
        const EnumDescriptor* e = f->enum_type();
        const EnumValueDescriptor* v = e->FindValueByName(s);
        if (v == nullptr) v = e->FindValueByName(EnumPrefix(e) + absl::AsciiStrToUpper(s));
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
    for (auto it = node.begin(); it != node.end(); ++it) {
      Message* e = msg->GetReflection()->AddMessage(msg, f);
      const std::string child = absl::StrCat(path, ".", it->first.Scalar());
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
      const EnumValueDescriptor* v = rep ? r->GetRepeatedEnum(msg, f, i) : r->GetEnum(msg, f);
      std::string name = v->name();
      std::string prefix;
      for (size_t k = 0; k < f->enum_type()->name().size(); ++k) {
        char c = f->enum_type()->name()[k];
        if (k > 0 && absl::ascii_isupper(c)) prefix.push_back('_');
        prefix.push_back(absl::ascii_toupper(c));
      }
      prefix += "_";
      if (name.rfind(prefix, 0) == 0) name = name.substr(prefix.size());
      out << absl::AsciiStrToLower(name);
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      EmitMessage(out, rep ? r->GetRepeatedMessage(msg, f, i) : r->GetMessage(msg, f));
      break;
  }
}

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path) {
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
  auto* orc = c.mutable_orchestrator();
  orc->set_total_steps(100);
  orc->set_mode(zerorl::v1::RUN_MODE_SYNC);
  orc->set_max_staleness(1);
  orc->mutable_eval()->set_every_steps(10);
  orc->mutable_eval()->set_temperature(1.0f);
  orc->set_heartbeat_ms(2000);
  orc->set_call_deadline_ms(600000);
  orc->set_max_retries(3);
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

absl::Status FinalizeRunConfig(zerorl::v1::RunConfig* c) {
  auto bad = [](absl::string_view key, absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": ", what));
  };
  if (c->run_id().empty()) return bad("run_id", "must not be empty");
  for (char ch : c->run_id()) {
    if (!(absl::ascii_isalnum(ch) || ch == '-' || ch == '_' || ch == '.'))
      return bad("run_id", "may only contain letters, digits, '-', '_' and '.'");
  }
  if (c->run_dir().empty()) c->set_run_dir(absl::StrCat("runs/", c->run_id()));
  if (c->buffer().path().empty()) c->mutable_buffer()->set_path(c->run_dir() + "/buffer");
  if (c->learner().checkpoint().dir().empty())
    c->mutable_learner()->mutable_checkpoint()->set_dir(c->run_dir() + "/checkpoints");
  if (c->rollout().group_size() < 1) return bad("rollout.group_size", "must be at least 1");
  if (c->rollout().prompts_per_step() < 1) return bad("rollout.prompts_per_step", "must be at least 1");
  if (c->rollout().kv_cache_mb() < 0) return bad("rollout.kv_cache_mb", "must be >= 0 (0: a quarter of the memory)");
  if (c->rollout().mla_cache().empty()) c->mutable_rollout()->set_mla_cache("latent");
  if (c->rollout().mla_cache() != "latent" && c->rollout().mla_cache() != "expanded")
    return bad("rollout.mla_cache", absl::StrCat("must be \"latent\" or \"expanded\", got \"",
                                                 c->rollout().mla_cache(), "\""));
  const auto& s = c->rollout().sampling();
  if (s.temperature() < 0) return bad("rollout.sampling.temperature", "must be >= 0");
  if (s.top_p() <= 0 || s.top_p() > 1) return bad("rollout.sampling.top_p", "must be in (0, 1]");
  if (s.top_k() < 0) return bad("rollout.sampling.top_k", "must be >= 0");
  if (s.max_new_tokens() < 1) return bad("rollout.sampling.max_new_tokens", "must be at least 1");
  const auto& g = c->learner().grpo();
  if (g.clip_low() < 0 || g.clip_low() >= 1) return bad("learner.grpo.clip_low", "must be in [0, 1)");
  if (g.clip_high() < 0) return bad("learner.grpo.clip_high", "must be >= 0");
  if (g.beta() < 0) return bad("learner.grpo.beta", "must be >= 0");
  if (g.epochs() < 1) return bad("learner.grpo.epochs", "must be at least 1");
  if (g.micro_batch() < 1) return bad("learner.grpo.micro_batch", "must be at least 1");
  const auto& o = c->learner().optimizer();
  if (o.lr() < 0) return bad("learner.optimizer.lr", "must be >= 0");
  if (o.beta1() < 0 || o.beta1() >= 1) return bad("learner.optimizer.beta1", "must be in [0, 1)");
  if (o.beta2() < 0 || o.beta2() >= 1) return bad("learner.optimizer.beta2", "must be in [0, 1)");
  if (c->orchestrator().total_steps() < 0) return bad("orchestrator.total_steps", "must be >= 0");
  if (c->learner().weight_chunk_bytes() < 1024)
    return bad("learner.weight_chunk_bytes", "must be at least 1024");
  if (c->server().max_message_mb() < 1) return bad("server.max_message_mb", "must be at least 1");
  if (auto s = ValidateDevices(*c); !s.ok()) return s;
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
