// JSON tree -> block YAML (see k8s_yaml.h for the promises).
#include "cli/k8s_yaml.h"

#include <cctype>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"

namespace zerorl {
namespace {

using nlohmann::ordered_json;

// True when `s` can be written unquoted and still reads back as this string.
bool IsPlainSafe(const std::string& s) {
  if (s.empty()) return false;
  const char c0 = s[0];
  if (!(absl::ascii_isalpha(c0) || c0 == '/' || c0 == '_')) return false;
  if (s.back() == ':') return false;
  for (char c : s) {
    if (!(absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '/' || c == '-' || c == ':' || c == '='))
      return false;
  }
  static const char* kReserved[] = {"true", "false", "yes", "no", "on", "off", "y", "n", "null"};
  const std::string lower = absl::AsciiStrToLower(s);
  for (const char* r : kReserved) {
    if (lower == r) return false;
  }
  return true;
}

bool IsPrintable(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x20 && c != '\n' && c != '\t') return false;
    if (c == 0x7f) return false;
  }
  return true;
}

bool IsBlockString(const ordered_json& v) {
  if (!v.is_string()) return false;
  const std::string& s = v.get_ref<const std::string&>();
  return s.find('\n') != std::string::npos && IsPrintable(s);
}

std::string Scalar(const ordered_json& v) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    return IsPlainSafe(s) ? s : v.dump();  // JSON escapes are valid YAML double-quoted escapes
  }
  if (v.is_object()) return "{}";  // only reached when empty
  if (v.is_array()) return "[]";
  return v.dump();
}

std::string Spaces(int n) { return std::string(static_cast<size_t>(n), ' '); }

// "|" header plus body lines at `indent`, keeping the exact trailing newlines.
void EmitLiteral(const std::string& s, int indent, std::string* out) {
  size_t trailing = 0;
  while (trailing < s.size() && s[s.size() - 1 - trailing] == '\n') ++trailing;
  const std::string body = s.substr(0, s.size() - trailing);
  std::string header = "|";
  // An explicit indentation indicator when the first non-empty line starts with a space.
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    if (line.empty()) continue;
    if (line[0] == ' ') header += "2";
    break;
  }
  header += trailing == 0 ? "-" : (trailing == 1 ? "" : "+");
  *out += header + "\n";
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    if (line.empty()) {
      *out += "\n";
    } else {
      *out += Spaces(indent);
      out->append(line.data(), line.size());
      *out += "\n";
    }
  }
  for (size_t i = 1; i < trailing; ++i) *out += "\n";
}

void EmitMap(const ordered_json& obj, int indent, bool first_inline, std::string* out);
void EmitSeq(const ordered_json& arr, int indent, std::string* out);

// The value after "key:" or "- " at block level `indent` (the key's own column).
void EmitAfterIndicator(const ordered_json& v, int indent, std::string* out) {
  if (v.is_object() && !v.empty()) {
    *out += "\n";
    EmitMap(v, indent + 2, false, out);
  } else if (v.is_array() && !v.empty()) {
    *out += "\n";
    EmitSeq(v, indent + 2, out);
  } else if (IsBlockString(v)) {
    *out += " ";
    EmitLiteral(v.get_ref<const std::string&>(), indent + 2, out);
  } else {
    *out += " " + Scalar(v) + "\n";
  }
}

void EmitMap(const ordered_json& obj, int indent, bool first_inline, std::string* out) {
  bool first = true;
  for (const auto& [key, value] : obj.items()) {
    if (!(first && first_inline)) *out += Spaces(indent);
    first = false;
    *out += Scalar(ordered_json(key)) + ":";
    EmitAfterIndicator(value, indent, out);
  }
}

void EmitSeq(const ordered_json& arr, int indent, std::string* out) {
  for (const auto& item : arr) {
    *out += Spaces(indent) + "-";
    if (item.is_object() && !item.empty()) {
      *out += " ";
      EmitMap(item, indent + 2, true, out);
    } else {
      EmitAfterIndicator(item, indent, out);
    }
  }
}

}  // namespace

std::string JsonToYaml(const ordered_json& value) {
  std::string out;
  if (value.is_object() && !value.empty()) {
    EmitMap(value, 0, false, &out);
  } else if (value.is_array() && !value.empty()) {
    EmitSeq(value, 0, &out);
  } else if (IsBlockString(value)) {
    EmitLiteral(value.get_ref<const std::string&>(), 2, &out);
  } else {
    out = Scalar(value) + "\n";
  }
  return out;
}

std::string JsonToYamlStream(const std::vector<ordered_json>& documents) {
  std::string out;
  for (const auto& doc : documents) out += "---\n" + JsonToYaml(doc);
  return out;
}

}  // namespace zerorl
