// TensorBoard event files, written without TensorFlow: TFRecord framing
//   uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
// around hand-encoded `tensorflow.Event` protos (wall_time = 1, step = 2,
// file_version = 3, summary = 5 { value = 1 { tag = 1, simple_value = 2 } }).
// The first record is the "brain.Event:2" version event. One file per writer:
// RUN_DIR/tensorboard/events.out.tfevents.<unix seconds>.<hostname>.<pid>.
// Each Write is flushed; not thread-safe.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

#include "absl/status/status.h"

namespace zerorl {

// CRC-32C (Castagnoli) of `n` bytes, and TFRecord's masked form of it.
uint32_t Crc32c(const void* data, size_t n);
uint32_t MaskCrc32c(uint32_t crc);

// One TFRecord frame around `data`.
std::string TfRecordFrame(const std::string& data);

// A serialised Event holding one scalar summary per entry of `scalars`.
std::string ScalarEvent(double wall_time, int64_t step, const std::map<std::string, double>& scalars);

class TensorBoardWriter {
 public:
  TensorBoardWriter() = default;
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // Creates `dir` if needed and a new event file in it.
  absl::Status Open(const std::string& dir);
  absl::Status WriteScalars(int64_t step, const std::map<std::string, double>& scalars);
  const std::string& path() const { return path_; }

 private:
  absl::Status WriteRecord(const std::string& data);
  std::string path_;
  FILE* file_ = nullptr;
};

}  // namespace zerorl
