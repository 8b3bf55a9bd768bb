// safetensors reading (mmap, validated) and writing.
//
// Format: u64 little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets:[begin,end]}, "__metadata__": {...}}, then
// the data. The reader maps every file read-only, checks that each tensor's
// byte range lies inside the file and matches dtype x shape, and converts
// F32/BF16/F16 to float on read. Errors name the file and the tensor.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace zerorl::model {

enum class DType { kF32, kBF16, kF16 };
const char* DTypeName(DType d);  // "F32", "BF16", "F16"

struct SafetensorsEntry {
  std::string name;
  std::string file;             // the file holding it
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // inside the mmap; valid while the reader lives
  size_t nbytes = 0;
};

class SafetensorsReader {
 public:
  // `path`: a .safetensors file, or a directory holding model.safetensors or
  // model.safetensors.index.json (sharded). Not thread-safe to open; reads are.
  static absl::StatusOr<std::unique_ptr<SafetensorsReader>> Open(const std::string& path);
  ~SafetensorsReader();
  SafetensorsReader(const SafetensorsReader&) = delete;
  SafetensorsReader& operator=(const SafetensorsReader&) = delete;

  std::vector<std::string> Names() const;
  bool Has(const std::string& name) const { return entries_.count(name) > 0; }
  // NOT_FOUND naming the tensor when absent.
  absl::StatusOr<const SafetensorsEntry*> Find(const std::string& name) const;
  // Converts the tensor to float into out[numel]; INVALID_ARGUMENT (naming file,
  // tensor, both shapes) when the stored shape differs from `shape`.
  absl::Status ReadF32(const std::string& name, const std::vector<int64_t>& shape, float* out) const;

 private:
  SafetensorsReader() = default;
  absl::Status MapFile(const std::string& file);
  struct Mapping { std::string file; void* addr = nullptr; size_t size = 0; };
  std::vector<Mapping> maps_;
  std::map<std::string, SafetensorsEntry> entries_;
};

struct SafetensorsTensor {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;  // numel(shape) floats
};

// Writes one file (atomically: temp file + rename), converting to `dtype`
// (F32 or BF16 round-to-nearest-even; F16 also accepted).
absl::Status WriteSafetensors(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                              DType dtype, const std::map<std::string, std::string>& metadata = {});

// bf16/f16 <-> f32 conversion helpers (exposed for tests and weight transport).
float Bf16ToF32(uint16_t v);
uint16_t F32ToBf16(float f);  // round to nearest even; NaN stays NaN
float F16ToF32(uint16_t v);
uint16_t F32ToF16(float f);

}  // namespace zerorl::model
