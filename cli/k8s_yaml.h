// YAML text for Kubernetes manifests and configs, from JSON trees.
//
// Emits block-style YAML that any YAML 1.2 parser (kubectl, js-yaml, yaml-cpp)
// reads back as the same JSON tree: keys in insertion order, strings plain
// only where no parser could take them for a number, boolean or null (else
// double-quoted), multi-line strings as literal blocks that keep their exact
// trailing newlines. Not a general YAML library: keys must be plain names.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace zerorl {

// One YAML document (no "---" marker), ending in a newline.
std::string JsonToYaml(const nlohmann::ordered_json& value);

// A multi-document stream: each document preceded by "---".
std::string JsonToYamlStream(const std::vector<nlohmann::ordered_json>& documents);

}  // namespace zerorl
