// Key encoding of the buffer's RocksDB (see keys.h for the layout).
#include "buffer/keys.h"

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace zerorl::buffer {

absl::Status ValidateRunId(absl::string_view run_id) {
  if (run_id.empty()) return absl::InvalidArgumentError("run_id must not be empty");
  if (run_id.size() > kMaxRunIdLength)
    return absl::InvalidArgumentError(absl::StrCat("run_id is longer than ", kMaxRunIdLength, " characters"));
  for (char c : run_id) {
    if (!(absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.'))
      return absl::InvalidArgumentError(absl::StrCat(
          "run_id '", absl::CHexEscape(run_id), "' may only contain letters, digits, '-', '_' and '.'"));
  }
  return absl::OkStatus();
}

absl::Status ValidateId(const zerorl::v1::TrajectoryId& id) {
  if (auto s = ValidateRunId(id.run_id()); !s.ok()) return s;
  if (id.step() < 0) return absl::InvalidArgumentError(absl::StrCat("step ", id.step(), " is negative"));
  if (id.group() < 0) return absl::InvalidArgumentError(absl::StrCat("group ", id.group(), " is negative"));
  if (id.sample() < 0) return absl::InvalidArgumentError(absl::StrCat("sample ", id.sample(), " is negative"));
  return absl::OkStatus();
}

std::string FormatId(const zerorl::v1::TrajectoryId& id) {
  return absl::StrCat(id.run_id(), "/", id.step(), "/", id.group(), "/", id.sample());
}

absl::StatusOr<zerorl::v1::TrajectoryId> ParseId(absl::string_view text) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("trajectory id '", absl::CHexEscape(text), "' is malformed: ", why,
                     " (expected RUN/STEP/GROUP/SAMPLE)"));
  };
  std::vector<absl::string_view> parts = absl::StrSplit(text, '/');
  if (parts.size() != 4) return bad(absl::StrCat("has ", parts.size(), " parts"));
  zerorl::v1::TrajectoryId id;
  id.set_run_id(std::string(parts[0]));
  int64_t step = 0;
  int32_t group = 0, sample = 0;
  auto digits = [](absl::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (!digits(parts[1]) || !absl::SimpleAtoi(parts[1], &step)) return bad("STEP is not a non-negative integer");
  if (!digits(parts[2]) || !absl::SimpleAtoi(parts[2], &group)) return bad("GROUP is not a non-negative integer");
  if (!digits(parts[3]) || !absl::SimpleAtoi(parts[3], &sample)) return bad("SAMPLE is not a non-negative integer");
  id.set_step(step);
  id.set_group(group);
  id.set_sample(sample);
  if (auto s = ValidateId(id); !s.ok()) return bad(s.message());
  return id;
}

void AppendBe64(std::string* out, uint64_t v) {
  char b[8];
  for (int i = 7; i >= 0; --i, v >>= 8) b[i] = static_cast<char>(v & 0xff);
  out->append(b, 8);
}
void AppendBe32(std::string* out, uint32_t v) {
  char b[4];
  for (int i = 3; i >= 0; --i, v >>= 8) b[i] = static_cast<char>(v & 0xff);
  out->append(b, 4);
}
uint64_t ReadBe64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
uint32_t ReadBe32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// IEEE-754 trick: flip all bits of negatives, only the sign bit of positives.
void AppendOrderedDouble(std::string* out, double v) {
  if (v == 0) v = 0;  // -0.0 sorts with +0.0
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  bits = (bits & (1ull << 63)) ? ~bits : bits | (1ull << 63);
  AppendBe64(out, bits);
}
double ReadOrderedDouble(const char* p) {
  uint64_t bits = ReadBe64(p);
  bits = (bits & (1ull << 63)) ? bits & ~(1ull << 63) : ~bits;
  double v;
  std::memcpy(&v, &bits, 8);
  return v;
}

std::string RunPrefix(absl::string_view run_id) {
  std::string k(run_id);
  k.push_back('\0');
  return k;
}
std::string StepPrefix(absl::string_view run_id, int64_t step) {
  std::string k = RunPrefix(run_id);
  AppendBe64(&k, static_cast<uint64_t>(step));
  return k;
}
std::string GroupKey(absl::string_view run_id, int64_t step, int32_t group) {
  std::string k = StepPrefix(run_id, step);
  AppendBe32(&k, static_cast<uint32_t>(group));
  return k;
}
std::string TrajectoryKey(absl::string_view run_id, int64_t step, int32_t group, int32_t sample) {
  std::string k = GroupKey(run_id, step, group);
  AppendBe32(&k, static_cast<uint32_t>(sample));
  return k;
}
std::string TrajectoryKey(const zerorl::v1::TrajectoryId& id) {
  return TrajectoryKey(id.run_id(), id.step(), id.group(), id.sample());
}

namespace {
absl::StatusOr<zerorl::v1::TrajectoryId> ParseKey(absl::string_view key, size_t tail) {
  size_t z = key.find('\0');
  if (z == absl::string_view::npos || key.size() != z + 1 + tail)
    return absl::DataLossError(absl::StrCat("malformed buffer key '", absl::CHexEscape(key), "'"));
  zerorl::v1::TrajectoryId id;
  id.set_run_id(std::string(key.substr(0, z)));
  const char* p = key.data() + z + 1;
  id.set_step(static_cast<int64_t>(ReadBe64(p)));
  id.set_group(static_cast<int32_t>(ReadBe32(p + 8)));
  if (tail == 16) id.set_sample(static_cast<int32_t>(ReadBe32(p + 12)));
  return id;
}
}  // namespace

absl::StatusOr<zerorl::v1::TrajectoryId> ParseTrajectoryKey(absl::string_view key) { return ParseKey(key, 16); }
absl::StatusOr<zerorl::v1::TrajectoryId> ParseGroupKey(absl::string_view key) { return ParseKey(key, 12); }

zerorl::v1::TrajectoryId IdFromSuffix(absl::string_view run_id, absl::string_view key) {
  const char* p = key.data() + key.size() - kIdSuffixBytes;
  zerorl::v1::TrajectoryId id;
  id.set_run_id(std::string(run_id));
  id.set_step(static_cast<int64_t>(ReadBe64(p)));
  id.set_group(static_cast<int32_t>(ReadBe32(p + 8)));
  id.set_sample(static_cast<int32_t>(ReadBe32(p + 12)));
  return id;
}

std::string PrefixSuccessor(std::string prefix) {
  while (!prefix.empty()) {
    unsigned char c = static_cast<unsigned char>(prefix.back());
    if (c != 0xff) {
      prefix.back() = static_cast<char>(c + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return prefix;
}

}  // namespace zerorl::buffer
