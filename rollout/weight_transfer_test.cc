// Weight transfer protocol: CRC-32C, chunking, staging validation (checksum,
// version, names, shapes, offsets) and aborted streams.
#include "rollout/weight_transfer.h"

#include <cstring>

#include <gtest/gtest.h>
#include <google/protobuf/util/message_differencer.h>

#include "rollout/crc32c.h"

namespace zerorl {
namespace {

using zerorl::v1::WeightChunk;

TEST(Crc32cTest, KnownVectorsAndExtension) {
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(Crc32c("", 0), 0u);
  std::string big(100003, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31 + 7);
  const uint32_t whole = Crc32c(big.data(), big.size());
  EXPECT_EQ(Crc32cExtend(Crc32c(big.data(), 12345), big.data() + 12345, big.size() - 12345), whole);
  big[500] ^= 1;
  EXPECT_NE(Crc32c(big.data(), big.size()), whole);
}

struct Fixture {
  std::vector<std::vector<float>> src = {std::vector<float>(1000), std::vector<float>(7), std::vector<float>(64)};
  std::vector<std::vector<int64_t>> shapes = {{10, 100}, {7}, {8, 8}};
  std::vector<std::string> names = {"a.weight", "b.bias", "c.weight"};
  std::vector<std::vector<float>> dst;
  Fixture() {
    for (size_t t = 0; t < src.size(); ++t)
      for (size_t i = 0; i < src[t].size(); ++i) src[t][i] = 0.001f * static_cast<float>(i) - 0.3f * t;
    for (auto& s : src) dst.emplace_back(s.size(), -1.f);
  }
  std::vector<WeightTensor> Tensors() const {
    std::vector<WeightTensor> t;
    for (size_t i = 0; i < src.size(); ++i) t.push_back({names[i], shapes[i], src[i].data(), (int64_t)src[i].size()});
    return t;
  }
  std::vector<WeightChunk> Chunks(int64_t chunk_bytes, bool bf16 = false, int64_t version = 5) const {
    std::vector<WeightChunk> out;
    ChunkOptions o;
    o.version = version;
    o.chunk_bytes = chunk_bytes;
    o.bf16 = bf16;
    o.config_json = "{}";
    EXPECT_TRUE(ForEachWeightChunk(Tensors(), o, [&](const WeightChunk& c) {
                  out.push_back(c);
                  return true;
                }).ok());
    return out;
  }
  WeightReceiver Receiver() {
    return WeightReceiver([this](const WeightChunk&) -> absl::StatusOr<WeightDestinations> {
      WeightDestinations d;
      for (size_t i = 0; i < src.size(); ++i) d[names[i]] = {shapes[i], dst[i].data(), (int64_t)dst[i].size()};
      return d;
    });
  }
  absl::Status Feed(WeightReceiver& rx, const std::vector<WeightChunk>& chunks) {
    for (const auto& c : chunks) {
      absl::Status s = rx.Add(c);
      if (!s.ok()) return s;
    }
    return rx.Finish();
  }
};

TEST(WeightTransferTest, ChunksAreBoundedAndRoundTrip) {
  Fixture f;
  const auto chunks = f.Chunks(256);  // 64 floats per chunk
  int64_t data = 0;
  int lasts = 0;
  for (const auto& c : chunks) {
    EXPECT_LE(c.data().size(), 256u);
    data += c.data().size();
    lasts += c.last_of_tensor();
  }
  EXPECT_EQ(chunks.size(), 16u + 1u + 1u);  // ceil(1000/64) + 1 + 1
  EXPECT_EQ(lasts, 3);
  EXPECT_EQ(data, (1000 + 7 + 64) * 4);
  EXPECT_EQ(chunks[0].tensor_count(), 3);
  EXPECT_EQ(chunks[0].config_json(), "{}");
  auto rx = f.Receiver();
  ASSERT_TRUE(f.Feed(rx, chunks).ok());
  EXPECT_EQ(rx.version(), 5);
  EXPECT_EQ(f.dst, f.src);
}

TEST(WeightTransferTest, SerializedChunksEqualTheProtoChunks) {
  Fixture f;
  for (bool bf16 : {false, true}) {
    const auto want = f.Chunks(256, bf16);
    ChunkOptions o;
    o.version = 5;
    o.chunk_bytes = 256;
    o.bf16 = bf16;
    o.config_json = "{}";
    std::vector<WeightChunk> got;
    ASSERT_TRUE(ForEachSerializedWeightChunk(f.Tensors(), o, [&](std::string&& s) {
                  got.emplace_back();
                  return got.back().ParseFromString(s);
                }).ok());
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got[i], want[i])) << "chunk " << i;
  }
}

TEST(WeightTransferTest, Bf16RoundTripIsClose) {
  Fixture f;
  auto rx = f.Receiver();
  ASSERT_TRUE(f.Feed(rx, f.Chunks(100, /*bf16=*/true)).ok());
  for (size_t t = 0; t < f.src.size(); ++t)
    for (size_t i = 0; i < f.src[t].size(); ++i) EXPECT_NEAR(f.dst[t][i], f.src[t][i], 1e-2 * std::fabs(f.src[t][i]) + 1e-6);
}

TEST(WeightTransferTest, CorruptChunkFailsItsChecksum) {
  Fixture f;
  auto chunks = f.Chunks(256);
  std::string d = chunks[3].data();
  d[5] ^= 0x40;
  chunks[3].set_data(d);
  auto rx = f.Receiver();
  absl::Status s = f.Feed(rx, chunks);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("a.weight"), std::string::npos) << s;
  EXPECT_EQ(rx.Finish().code(), absl::StatusCode::kDataLoss);  // sticky
}

TEST(WeightTransferTest, AbortedStreamIsIncomplete) {
  Fixture f;
  auto chunks = f.Chunks(256);
  chunks.resize(10);
  auto rx = f.Receiver();
  absl::Status s = f.Feed(rx, chunks);
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << s;
  EXPECT_NE(s.message().find("0 of 3"), std::string::npos) << s;
  auto empty = f.Receiver();
  EXPECT_EQ(empty.Finish().code(), absl::StatusCode::kAborted);
}

TEST(WeightTransferTest, RejectsMalformedStreams) {
  Fixture f;
  {  // version changes mid-stream
    auto chunks = f.Chunks(256);
    chunks[4].set_version(6);
    auto rx = f.Receiver();
    EXPECT_NE(f.Feed(rx, chunks).message().find("version"), std::string::npos);
  }
  {  // unknown tensor
    auto chunks = f.Chunks(256);
    for (auto& c : chunks)
      if (c.tensor() == "b.bias") c.set_tensor("z.bias");
    auto rx = f.Receiver();
    EXPECT_NE(f.Feed(rx, chunks).message().find("unknown tensor \"z.bias\""), std::string::npos);
  }
  {  // wrong shape
    auto chunks = f.Chunks(256);
    for (auto& c : chunks)
      if (c.tensor() == "c.weight" && c.shape_size()) c.set_shape(0, 4), c.set_shape(1, 16);
    auto rx = f.Receiver();
    EXPECT_NE(f.Feed(rx, chunks).message().find("shape [4,16], expected [8,8]"), std::string::npos);
  }
  {  // a chunk skipped (offset gap)
    auto chunks = f.Chunks(256);
    chunks.erase(chunks.begin() + 2);
    auto rx = f.Receiver();
    EXPECT_NE(f.Feed(rx, chunks).message().find("offset"), std::string::npos);
  }
  {  // wrong tensor count announced
    auto chunks = f.Chunks(256);
    chunks[0].set_tensor_count(4);
    auto rx = f.Receiver();
    EXPECT_FALSE(f.Feed(rx, chunks).ok());
  }
  ChunkOptions o;
  o.chunk_bytes = 2;  // less than one float
  EXPECT_FALSE(ForEachWeightChunk(f.Tensors(), o, [](const WeightChunk&) { return true; }).ok());
}

}  // namespace
}  // namespace zerorl
