// The "default: ..." comments of proto/zerorl/v1/config.proto are the
// documentation of every setting; DefaultRunConfig() (common/config.cc) is
// what runs. This test reads the .proto text and checks the two agree, field
// by field, and that every field of config.proto documents its default.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/config.h"
#include "common/proto_enum.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"

namespace zerorl {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

struct DocumentedDefault {
  std::string text;  // what follows "default:" up to the end of the comment
  int line = 0;
};

// (message name, field name) -> its documented default, for every field of
// every message in config.proto. A field's comment is the comment lines just
// above it plus its trailing comment.
std::map<std::pair<std::string, std::string>, DocumentedDefault> ReadProtoDefaults(const std::string& path,
                                                                                    std::string* error) {
  std::map<std::pair<std::string, std::string>, DocumentedDefault> out;
  std::ifstream in(path);
  if (!in) {
    *error = "cannot open " + path;
    return out;
  }
  const std::regex message_re(R"(^message (\w+) \{)");
  const std::regex field_re(R"(^\s+(?:optional |repeated )?[\w.]+ (\w+) = \d+;\s*(//.*)?$)");
  std::string line, message, pending;
  for (int n = 1; std::getline(in, line); ++n) {
    std::smatch m;
    const std::string stripped(absl::StripAsciiWhitespace(line));
    if (std::regex_search(line, m, message_re)) {
      message = m[1];
      pending.clear();
    } else if (line == "}") {
      message.clear();
    } else if (absl::StartsWith(stripped, "//")) {
      pending += " " + stripped.substr(2);
    } else if (!message.empty() && std::regex_match(line, m, field_re)) {
      const std::string comment = pending + " " + (m[2].matched ? m[2].str().substr(2) : "");
      pending.clear();
      DocumentedDefault d;
      d.line = n;
      const size_t at = comment.rfind("default:");
      d.text = at == std::string::npos ? "" : std::string(absl::StripAsciiWhitespace(comment.substr(at + 8)));
      out[{message, m[1]}] = d;
    } else {
      pending.clear();
    }
  }
  return out;
}

// The value part of a documented default: a quoted string, "[]", or the first word.
std::string ValueText(const std::string& text) {
  if (absl::StartsWith(text, "\"")) {
    const size_t end = text.find('"', 1);
    return end == std::string::npos ? text : text.substr(0, end + 1);
  }
  const size_t end = text.find_first_of(" ;(");
  return end == std::string::npos ? text : text.substr(0, end);
}

// Checks every field of `m` (a DefaultRunConfig part) against the documentation.
void CheckMessage(const Message& m, const std::string& prefix,
                  const std::map<std::pair<std::string, std::string>, DocumentedDefault>& docs, int* checked) {
  const auto* d = m.GetDescriptor();
  const auto* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    const std::string path = prefix.empty() ? f->name() : absl::StrCat(prefix, ".", f->name());
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !f->is_repeated()) {
      if (f->message_type()->file() == d->file()) CheckMessage(r->GetMessage(m, f), path, docs, checked);
      continue;  // messages of other files (RewardSpec) document their own defaults
    }
    auto it = docs.find({d->name(), f->name()});
    if (it == docs.end() || it->second.text.empty()) {
      ADD_FAILURE() << "config.proto: " << d->name() << "." << f->name() << " (" << path
                    << ") has no \"default: ...\" comment";
      continue;
    }
    const std::string want = ValueText(it->second.text);
    const std::string where = absl::StrCat("config.proto:", it->second.line, ": ", path, " documents default ",
                                           want, " but DefaultRunConfig has ");
    ++*checked;
    if (f->is_repeated()) {
      EXPECT_EQ(want, "[]") << where << r->FieldSize(m, f) << " entries";
      EXPECT_EQ(r->FieldSize(m, f), 0) << where << r->FieldSize(m, f) << " entries";
      continue;
    }
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        EXPECT_EQ(std::to_string(r->GetInt32(m, f)), want) << where << r->GetInt32(m, f);
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        EXPECT_EQ(std::to_string(r->GetInt64(m, f)), want) << where << r->GetInt64(m, f);
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        EXPECT_EQ(std::to_string(r->GetUInt64(m, f)), want) << where << r->GetUInt64(m, f);
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        EXPECT_EQ(r->GetDouble(m, f), std::strtod(want.c_str(), nullptr)) << where << r->GetDouble(m, f);
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        EXPECT_EQ(r->GetFloat(m, f), std::strtof(want.c_str(), nullptr)) << where << r->GetFloat(m, f);
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        EXPECT_EQ(r->GetBool(m, f) ? "true" : "false", want) << where << r->GetBool(m, f);
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        EXPECT_EQ(absl::StrCat("\"", r->GetString(m, f), "\""), want) << where << "\"" << r->GetString(m, f) << "\"";
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        EXPECT_EQ(EnumShortName(r->GetEnum(m, f)), want) << where << EnumShortName(r->GetEnum(m, f));
        break;
      default:
        ADD_FAILURE() << path << ": unexpected type";
    }
  }
}

TEST(ConfigDefaultsTest, ProtoCommentsMatchDefaultRunConfig) {
  std::string error;
  const auto docs = ReadProtoDefaults(std::string(ZERORL_SOURCE_DIR) + "/proto/zerorl/v1/config.proto", &error);
  ASSERT_TRUE(error.empty()) << error;
  ASSERT_GT(docs.size(), 100u);
  int checked = 0;
  CheckMessage(DefaultRunConfig(), "", docs, &checked);
  EXPECT_GT(checked, 100);
}

// The parser of this test itself: a default it misreads would hide a mismatch.
TEST(ConfigDefaultsTest, ValueTextTakesTheValueOnly) {
  EXPECT_EQ(ValueText("1.0 (0 = greedy)"), "1.0");
  EXPECT_EQ(ValueText("\"\" (RUN_DIR/buffer)"), "\"\"");
  EXPECT_EQ(ValueText("\"/usr/bin/python3\""), "\"/usr/bin/python3\"");
  EXPECT_EQ(ValueText("[]"), "[]");
  EXPECT_EQ(ValueText("dapo"), "dapo");
}

}  // namespace
}  // namespace zerorl
