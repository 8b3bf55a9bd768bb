// Bad input to the config loader (issue 16): non-finite numbers, negative and
// out-of-range values, run ids that are not plain names, duplicate keys, a
// directory as the file, ports, thread counts and addresses; and an explicit
// zero for every field whose default is not zero.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/config.h"
#include "common/json.h"
#include "common/proto_enum.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"

namespace zerorl {
namespace {

using ::testing::HasSubstr;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// "a.b.c: V" as nested YAML.
std::string NestedYaml(const std::string& dotted, const std::string& value) {
  std::vector<std::string> parts = absl::StrSplit(dotted, '.');
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    out += std::string(2 * i, ' ') + parts[i] + ":" + (i + 1 == parts.size() ? " " + value : "") + "\n";
  }
  return out;
}

TEST(ConfigInputTest, NonFiniteNumbersAreRefusedByKey) {
  for (const char* v : {"-nan", "nan", ".nan", ".inf", "-.inf", "+.inf", "inf", "1e999", "-1e999", "NaN"}) {
    for (const char* key : {"learner.optimizer.lr", "rollout.sampling.top_p", "rollout.sampling.temperature",
                            "dataset.eval_fraction", "learner.grpo.clip_high"}) {
      auto c = ParseRunConfig(NestedYaml(key, v), "t.yaml");
      ASSERT_FALSE(c.ok()) << key << ": " << v;
      EXPECT_THAT(c.status().message(), HasSubstr(key)) << v;
      EXPECT_THAT(c.status().message(), HasSubstr("finite")) << key << ": " << v;
    }
  }
}

TEST(ConfigInputTest, NonFiniteInAMessageBuiltInCodeIsRefused) {
  zerorl::v1::RunConfig c = DefaultRunConfig();
  c.mutable_learner()->mutable_optimizer()->set_lr(std::nan(""));
  auto s = FinalizeRunConfig(&c);
  EXPECT_THAT(s.message(), HasSubstr("learner.optimizer.lr: must be a finite number"));
  c = DefaultRunConfig();
  c.mutable_reward()->mutable_spec()->add_terms()->set_weight(INFINITY);
  s = FinalizeRunConfig(&c);
  EXPECT_THAT(s.message(), HasSubstr("reward.spec.terms[0].weight: must be a finite number"));
}

TEST(ConfigInputTest, NegativeAndOutOfRangeValuesAreRefusedByKey) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"dataset.max_prompt_tokens", "-1"},
      {"learner.checkpoint.keep_last", "-1"},
      {"learner.checkpoint.every_steps", "-2"},
      {"learner.optimizer.grad_clip", "-0.5"},
      {"learner.optimizer.warmup_steps", "-3"},
      {"learner.optimizer.weight_decay", "-0.1"},
      {"learner.optimizer.min_lr_ratio", "1.5"},
      {"dataset.eval_fraction", "-0.1"},
      {"dataset.eval_fraction", "1"},
      {"learner.publish_every", "-1"},
      {"learner.publish_every", "0"},
      {"orchestrator.max_retries", "-1"},
      {"orchestrator.metrics_port", "99999"},
      {"orchestrator.metrics_port", "-1"},
      {"orchestrator.listen_port", "70000"},
      {"rollout.listen_port", "65536"},
      {"server.health_port", "100000"},
      {"buffer.lease_seconds", "0"},
      {"buffer.keep_last_steps", "-1"},
      {"orchestrator.heartbeat_ms", "0"},
      {"orchestrator.max_staleness", "-1"},
      {"orchestrator.eval.every_steps", "-1"},
      {"model.threads", "65536"},
      {"model.threads", "-1"},
      {"reward.threads", "100000"},
      {"reward.sandbox.cpu_seconds", "-1"},
      {"learner.grpo.adv_eps", "-1e-6"},
      {"learner.grpo.is_cap", "0"},
      {"learner.grpo.is_cap", "-2"},
      {"learner.grpo.is_mask_low", "-0.5"},
      {"server.max_message_mb", "4096"},
  };
  for (const auto& [key, value] : cases) {
    auto c = ParseRunConfig(NestedYaml(key, value), "t.yaml");
    ASSERT_FALSE(c.ok()) << key << ": " << value;
    EXPECT_THAT(c.status().message(), HasSubstr(absl::StrCat("t.yaml: ", key, ": "))) << value;
  }
}

TEST(ConfigInputTest, RunIdMustBeAPlainName) {
  for (const char* id : {"..", ".", "a/b", "../x", "a b", "x\\y", ""}) {
    auto c = ParseRunConfig(absl::StrCat("run_id: '", id, "'\n"), "t.yaml");
    ASSERT_FALSE(c.ok()) << id;
    EXPECT_THAT(c.status().message(), HasSubstr("run_id: ")) << id;
  }
  auto c = ParseRunConfig(absl::StrCat("run_id: ", std::string(65, 'a'), "\n"), "t.yaml");
  EXPECT_THAT(c.status().message(), HasSubstr("longer than 64"));
  for (const char* id : {"countdown-demo", "run_1.2", "a", "..a", "a..b"}) {
    EXPECT_TRUE(ParseRunConfig(absl::StrCat("run_id: '", id, "'\n"), "t.yaml").ok()) << id;
  }
}

TEST(ConfigInputTest, TextCountersNeedAPlainUniqueNameAndSubstrings) {
  auto counters = [](const std::string& items) {
    return ParseRunConfig("orchestrator:\n  text_counters:\n" + items, "t.yaml");
  };
  auto ok = counters("    - {name: attempts, substrings: [' no.', ' yes.']}\n    - {name: wait2, substrings: [wait]}\n");
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_EQ(ok->orchestrator().text_counters_size(), 2);
  EXPECT_EQ(ok->orchestrator().text_counters(0).substrings(1), " yes.");
  struct Case {
    std::string items, key, what;
  };
  for (const Case& c : std::vector<Case>{
           {"    - {name: Attempts, substrings: [x]}\n", "orchestrator.text_counters[0].name", "[a-z0-9_]+"},
           {"    - {substrings: [x]}\n", "orchestrator.text_counters[0].name", "[a-z0-9_]+"},
           {"    - {name: a, substrings: [x]}\n    - {name: a, substrings: [y]}\n",
            "orchestrator.text_counters[1].name", "also text_counters[0]"},
           {"    - {name: a}\n", "orchestrator.text_counters[0].substrings", "at least one"},
           {"    - {name: a, substrings: [x, '']}\n", "orchestrator.text_counters[0].substrings[1]", "empty"},
       }) {
    auto bad = counters(c.items);
    ASSERT_FALSE(bad.ok()) << c.items;
    EXPECT_THAT(bad.status().message(), HasSubstr(c.key + ": ")) << c.items;
    EXPECT_THAT(bad.status().message(), HasSubstr(c.what)) << c.items;
  }
}

TEST(ConfigInputTest, DuplicateKeysAreRefusedWithBothLines) {
  auto c = ParseRunConfig("learner:\n  optimizer:\n    lr: 1.0e-5\n    lr: 1.0\n", "t.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("t.yaml:4: learner.optimizer.lr: duplicate key (first given on line 3)"));
  c = ParseRunConfig("seed: 1\nrollout: {group_size: 2}\nseed: 2\n", "t.yaml");
  EXPECT_THAT(c.status().message(), HasSubstr("t.yaml:3: seed: duplicate key"));
}

TEST(ConfigInputTest, ADirectoryIsNotAConfig) {
  const std::string dir = ::testing::TempDir();
  auto c = LoadRunConfig(dir);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr("is a directory"));
}

TEST(ConfigInputTest, PortsThreadsAndAddresses) {
  EXPECT_TRUE(ValidatePort(0, "--port", true).ok());
  EXPECT_FALSE(ValidatePort(0, "--port", false).ok());
  EXPECT_TRUE(ValidatePort(65535, "--port", false).ok());
  EXPECT_THAT(ValidatePort(70000, "--port", false).message(), HasSubstr("--port: port 70000 is out of range"));
  EXPECT_TRUE(ValidateThreads(0, "--threads").ok());
  EXPECT_TRUE(ValidateThreads(kMaxThreads, "--threads").ok());
  EXPECT_THAT(ValidateThreads(65536, "--threads").message(), HasSubstr("--threads: 65536 threads"));
  for (const char* ok : {"127.0.0.1:50051", "localhost:1", "[::1]:65535", "dns:///orchestrator.zerorl:50051",
                         "unix:/tmp/sock"}) {
    EXPECT_TRUE(ValidateAddress(ok, "--addr").ok()) << ok;
  }
  for (const char* bad : {"127.0.0.1:99999", "127.0.0.1:0", "127.0.0.1", ":50051", "host:port", "::1:50051", ""}) {
    auto s = ValidateAddress(bad, "--addr");
    EXPECT_FALSE(s.ok()) << bad;
    EXPECT_THAT(s.message(), HasSubstr("--addr: ")) << bad;
  }
}

TEST(ConfigInputTest, JsonNestingIsBounded) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  auto j = ParseJson(deep);
  ASSERT_FALSE(j.ok());
  EXPECT_THAT(j.status().message(), HasSubstr("nested deeper than 256 levels"));
  EXPECT_FALSE(ParseJson(std::string(300, '{')).ok());
  // Brackets inside strings do not count; the limit itself is fine.
  EXPECT_TRUE(ParseJson("{\"a\": \"" + std::string(1000, '[') + "\\\"[\"}").ok());
  EXPECT_TRUE(ParseJson(std::string(256, '[') + std::string(256, ']')).ok());
  EXPECT_THAT(ParseJson("{\"a\": ").status().message(), HasSubstr("not valid JSON"));
}

TEST(ConfigInputTest, EnumShortNamesGoBothWays) {
  const auto* e = zerorl::v1::LossAggregation_descriptor();
  EXPECT_EQ(EnumShortName(e->FindValueByName("LOSS_AGGREGATION_DR_GRPO")), "dr_grpo");
  EXPECT_EQ(FindEnumValue(e, "dr_grpo")->number(), zerorl::v1::LOSS_AGGREGATION_DR_GRPO);
  EXPECT_EQ(FindEnumValue(e, "DAPO")->number(), zerorl::v1::LOSS_AGGREGATION_DAPO);
  EXPECT_EQ(FindEnumValue(e, "LOSS_AGGREGATION_GRPO")->number(), zerorl::v1::LOSS_AGGREGATION_GRPO);
  EXPECT_EQ(FindEnumValue(e, "fast"), nullptr);
  EXPECT_EQ(EnumChoices(e), "grpo|dapo|dr_grpo");
}

// Every scalar of `m` (recursively) whose value in DefaultRunConfig is not
// zero: its dotted path and field.
void NonZeroDefaults(const Message& m, const std::string& prefix,
                     std::vector<std::pair<std::string, const FieldDescriptor*>>* out) {
  const auto* d = m.GetDescriptor();
  const auto* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    const std::string path = prefix.empty() ? f->name() : absl::StrCat(prefix, ".", f->name());
    if (f->is_repeated()) continue;
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      NonZeroDefaults(r->GetMessage(m, f), path, out);
      continue;
    }
    bool zero = false;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: zero = r->GetInt32(m, f) == 0; break;
      case FieldDescriptor::CPPTYPE_INT64: zero = r->GetInt64(m, f) == 0; break;
      case FieldDescriptor::CPPTYPE_UINT32: zero = r->GetUInt32(m, f) == 0; break;
      case FieldDescriptor::CPPTYPE_UINT64: zero = r->GetUInt64(m, f) == 0; break;
      case FieldDescriptor::CPPTYPE_DOUBLE: zero = r->GetDouble(m, f) == 0; break;
      case FieldDescriptor::CPPTYPE_FLOAT: zero = r->GetFloat(m, f) == 0; break;
      case FieldDescriptor::CPPTYPE_BOOL: zero = !r->GetBool(m, f); break;
      default: zero = true;  // strings ("" means the documented fallback) and enums (0 is UNSPECIFIED)
    }
    if (!zero) out->push_back({path, f});
  }
}

// Issue 16 #12: zero must mean zero. For every number or bool whose default is
// not zero, the field has explicit presence (proto3 `optional`), and writing 0
// (false) either gives exactly 0 or an error naming the key — never the default.
TEST(ConfigInputTest, AnExplicitZeroIsKeptOrRefusedForEveryNonZeroDefault) {
  std::vector<std::pair<std::string, const FieldDescriptor*>> fields;
  NonZeroDefaults(DefaultRunConfig(), "", &fields);
  ASSERT_GE(fields.size(), 50u);
  int kept = 0, refused = 0;
  for (const auto& [path, f] : fields) {
    EXPECT_TRUE(f->has_presence()) << path << " has a non-zero default but is not `optional` in config.proto";
    const bool is_bool = f->cpp_type() == FieldDescriptor::CPPTYPE_BOOL;
    auto c = ParseRunConfig(NestedYaml(path, is_bool ? "false" : "0"), "t.yaml");
    if (!c.ok()) {
      EXPECT_THAT(c.status().message(), HasSubstr(absl::StrCat("t.yaml: ", path, ": "))) << path;
      ++refused;
      continue;
    }
    ++kept;
    // Walk to the field and read it back.
    const Message* m = &*c;
    std::vector<std::string> parts = absl::StrSplit(path, '.');
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      const FieldDescriptor* sub = m->GetDescriptor()->FindFieldByName(parts[i]);
      m = &m->GetReflection()->GetMessage(*m, sub);
    }
    EXPECT_TRUE(m->GetReflection()->HasField(*m, f)) << path;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: EXPECT_EQ(m->GetReflection()->GetInt32(*m, f), 0) << path; break;
      case FieldDescriptor::CPPTYPE_INT64: EXPECT_EQ(m->GetReflection()->GetInt64(*m, f), 0) << path; break;
      case FieldDescriptor::CPPTYPE_DOUBLE: EXPECT_EQ(m->GetReflection()->GetDouble(*m, f), 0) << path; break;
      case FieldDescriptor::CPPTYPE_FLOAT: EXPECT_EQ(m->GetReflection()->GetFloat(*m, f), 0) << path; break;
      case FieldDescriptor::CPPTYPE_BOOL: EXPECT_FALSE(m->GetReflection()->GetBool(*m, f)) << path; break;
      default: ADD_FAILURE() << path;
    }
  }
  EXPECT_GT(kept, 10);
  EXPECT_GT(refused, 10);
}

}  // namespace
}  // namespace zerorl
