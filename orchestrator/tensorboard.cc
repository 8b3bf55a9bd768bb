// TensorBoard event-file writer (see tensorboard.h).
#include "orchestrator/tensorboard.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace zerorl {
namespace {

const std::array<uint32_t, 256>& CrcTable() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void PutTag(int field, int wire_type, std::string* out) { PutVarint((field << 3) | wire_type, out); }

void PutBytesField(int field, const std::string& bytes, std::string* out) {
  PutTag(field, 2, out);
  PutVarint(bytes.size(), out);
  out->append(bytes);
}

template <typename T>
void PutFixed(T v, std::string* out) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));  // little-endian hosts only (x86-64, aarch64)
  out->append(buf, sizeof(T));
}

std::string EventHeader(double wall_time, int64_t step) {
  std::string e;
  PutTag(1, 1, &e);
  PutFixed<double>(wall_time, &e);
  if (step != 0) {
    PutTag(2, 0, &e);
    PutVarint(static_cast<uint64_t>(step), &e);
  }
  return e;
}

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

uint32_t Crc32c(const void* data, size_t n) {
  const auto& t = CrcTable();
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = t[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t MaskCrc32c(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

std::string TfRecordFrame(const std::string& data) {
  std::string out;
  std::string len;
  PutFixed<uint64_t>(data.size(), &len);
  out.append(len);
  PutFixed<uint32_t>(MaskCrc32c(Crc32c(len.data(), len.size())), &out);
  out.append(data);
  PutFixed<uint32_t>(MaskCrc32c(Crc32c(data.data(), data.size())), &out);
  return out;
}

std::string ScalarEvent(double wall_time, int64_t step, const std::map<std::string, double>& scalars) {
  std::string summary;
  for (const auto& [tag, value] : scalars) {
    std::string v;
    PutBytesField(1, tag, &v);
    PutTag(2, 5, &v);
    PutFixed<float>(static_cast<float>(value), &v);
    PutBytesField(1, v, &summary);
  }
  std::string e = EventHeader(wall_time, step);
  PutBytesField(5, summary, &e);
  return e;
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

absl::Status TensorBoardWriter::Open(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  char host[256] = "localhost";
  gethostname(host, sizeof(host) - 1);
  const double now = NowSeconds();
  path_ = absl::StrCat(dir, "/events.out.tfevents.", static_cast<int64_t>(now), ".", host, ".", getpid());
  file_ = std::fopen(path_.c_str(), "wb");
  if (file_ == nullptr) return absl::PermissionDeniedError(absl::StrCat("cannot write ", path_));
  std::string version = EventHeader(now, 0);
  PutBytesField(3, "brain.Event:2", &version);
  return WriteRecord(version);
}

absl::Status TensorBoardWriter::WriteScalars(int64_t step, const std::map<std::string, double>& scalars) {
  return WriteRecord(ScalarEvent(NowSeconds(), step, scalars));
}

absl::Status TensorBoardWriter::WriteRecord(const std::string& data) {
  if (file_ == nullptr) return absl::FailedPreconditionError("TensorBoard writer is not open");
  const std::string frame = TfRecordFrame(data);
  if (std::fwrite(frame.data(), 1, frame.size(), file_) != frame.size() || std::fflush(file_) != 0) {
    return absl::DataLossError(absl::StrCat("writing ", path_, " failed"));
  }
  return absl::OkStatus();
}

}  // namespace zerorl
