// Enum short names (see proto_enum.h).
#include "common/proto_enum.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"

namespace zerorl {
namespace {

// "LOSS_AGGREGATION_" for LossAggregation.
std::string EnumPrefix(const google::protobuf::EnumDescriptor* e) {
  std::string out;
  const std::string& n = e->name();
  for (size_t i = 0; i < n.size(); ++i) {
    if (i > 0 && absl::ascii_isupper(n[i])) out.push_back('_');
    out.push_back(absl::ascii_toupper(n[i]));
  }
  return out + "_";
}

}  // namespace

std::string EnumShortName(const google::protobuf::EnumValueDescriptor* v) {
  std::string name = v->name();
  const std::string prefix = EnumPrefix(v->type());
  if (name.rfind(prefix, 0) == 0) name = name.substr(prefix.size());
  return absl::AsciiStrToLower(name);
}

const google::protobuf::EnumValueDescriptor* FindEnumValue(const google::protobuf::EnumDescriptor* e,
                                                           absl::string_view name) {
  const google::protobuf::EnumValueDescriptor* v = e->FindValueByName(std::string(name));
  if (v == nullptr) v = e->FindValueByName(EnumPrefix(e) + absl::AsciiStrToUpper(name));
  return v;
}

std::string EnumChoices(const google::protobuf::EnumDescriptor* e) {
  std::vector<std::string> names;
  for (int i = 0; i < e->value_count(); ++i) {
    if (e->value(i)->number() == 0) continue;
    names.push_back(EnumShortName(e->value(i)));
  }
  return absl::StrJoin(names, "|");
}

}  // namespace zerorl
