// Enum values by their short lowercase names, as people write them in YAML
// and read them in rendered configs: for the enum `LossAggregation`,
// LOSS_AGGREGATION_DAPO is "dapo". The one place that maps the two ways
// (common/config.cc reads and writes YAML with it, cli/k8s_config.cc renders).
// Thread-safe (descriptors are immutable).
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"

namespace zerorl {

// "dapo" for LOSS_AGGREGATION_DAPO; a value without the type's prefix is
// lowercased whole.
std::string EnumShortName(const google::protobuf::EnumValueDescriptor* v);

// The value named `name`, by its full name (LOSS_AGGREGATION_DAPO) or its short
// name in any case ("dapo", "DAPO"); nullptr when none matches.
const google::protobuf::EnumValueDescriptor* FindEnumValue(const google::protobuf::EnumDescriptor* e,
                                                           absl::string_view name);

// The short names of every value but the zero (UNSPECIFIED) one, "a|b|c".
std::string EnumChoices(const google::protobuf::EnumDescriptor* e);

}  // namespace zerorl
