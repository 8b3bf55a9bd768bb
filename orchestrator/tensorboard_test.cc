// TensorBoard event files: CRC-32C, TFRecord framing, Event encoding, Prometheus text.
#include "orchestrator/tensorboard.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "orchestrator/prometheus.h"

namespace zerorl {
namespace {

TEST(TensorBoardTest, Crc32cKnownAnswer) {
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(Crc32c("", 0), 0u);
}

// Reads back TFRecords, verifying both checksums.
std::vector<std::string> ReadRecords(const std::string& bytes) {
  std::vector<std::string> out;
  size_t off = 0;
  while (off + 12 <= bytes.size()) {
    uint64_t len;
    uint32_t lcrc, dcrc;
    std::memcpy(&len, bytes.data() + off, 8);
    std::memcpy(&lcrc, bytes.data() + off + 8, 4);
    EXPECT_EQ(lcrc, MaskCrc32c(Crc32c(bytes.data() + off, 8)));
    std::string data = bytes.substr(off + 12, len);
    std::memcpy(&dcrc, bytes.data() + off + 12 + len, 4);
    EXPECT_EQ(dcrc, MaskCrc32c(Crc32c(data.data(), data.size())));
    out.push_back(data);
    off += 12 + len + 4;
  }
  EXPECT_EQ(off, bytes.size());
  return out;
}

TEST(TensorBoardTest, WritesVersionThenScalarEvents) {
  TensorBoardWriter w;
  ASSERT_TRUE(w.Open(::testing::TempDir() + "/tb").ok());
  ASSERT_TRUE(w.WriteScalars(3, {{"reward_mean", 0.5}, {"kl", 0.01}}).ok());
  std::ifstream in(w.path(), std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  auto records = ReadRecords(ss.str());
  ASSERT_EQ(records.size(), 2u);
  EXPECT_NE(records[0].find("brain.Event:2"), std::string::npos);
  // Event: wall_time (tag 0x09, 8 bytes), step (tag 0x10, varint 3), summary (tag 0x2a).
  const std::string& e = records[1];
  ASSERT_EQ(static_cast<uint8_t>(e[0]), 0x09);
  EXPECT_EQ(static_cast<uint8_t>(e[9]), 0x10);
  EXPECT_EQ(static_cast<uint8_t>(e[10]), 3);
  EXPECT_EQ(static_cast<uint8_t>(e[11]), 0x2a);
  EXPECT_NE(e.find("reward_mean"), std::string::npos);
  float half = 0.5f;
  EXPECT_NE(e.find(std::string(reinterpret_cast<const char*>(&half), 4)), std::string::npos);
}

TEST(PrometheusTest, RendersGaugesWithRunLabel) {
  std::string text = RenderPrometheus("demo", {{"reward_mean", 0.25}, {"eval/accuracy", 1}});
  EXPECT_NE(text.find("# TYPE zerorl_reward_mean gauge\nzerorl_reward_mean{run=\"demo\"} 0.25\n"), std::string::npos);
  EXPECT_NE(text.find("zerorl_eval_accuracy{run=\"demo\"} 1\n"), std::string::npos);
}

}  // namespace
}  // namespace zerorl
