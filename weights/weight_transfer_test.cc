// Weight transfer protocol: CRC-32C, chunking, staging validation (checksum,
// version, names, shapes, offsets) and aborted streams; the zero-copy wire
// form (WireChunk -> ByteBuffer -> ParseWeightChunkBuffer) against protobuf.
#include "weights/weight_transfer.h"

#include <cstring>
#include <random>

#include <gtest/gtest.h>
#include <google/protobuf/util/message_differencer.h>

#include "weights/crc32c.h"
#include "weights/weight_chunk_buffer.h"

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

// Bit-at-a-time CRC-32C, the definition the fast paths must match.
uint32_t BitwiseCrc32c(uint32_t crc, const unsigned char* p, size_t n) {
  crc = ~crc;
  while (n--) {
    crc ^= *p++;
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

TEST(Crc32cTest, MatchesBitwiseDefinitionAtEverySizeAndAlignment) {
  std::mt19937 rng(3);
  std::vector<unsigned char> src(3 * 8192 * 2 + 3 * 256 + 100);
  for (auto& b : src) b = static_cast<unsigned char>(rng());
  std::vector<unsigned char> dst(src.size() + 8);
  // Every small size and alignment, then sizes around the three-way block edges.
  std::vector<size_t> sizes;
  for (size_t n = 0; n <= 800; ++n) sizes.push_back(n);
  for (size_t n : {3 * 256 - 1, 3 * 256 + 9, 3 * 8192 - 8, 3 * 8192, 3 * 8192 + 3 * 256 + 7, 2 * 3 * 8192 + 3 * 256 + 90})
    sizes.push_back(n);
  for (size_t n : sizes)
    for (size_t off : {0, 1, 3, 7}) {
      const uint32_t seed = static_cast<uint32_t>(n * 2654435761u);
      const uint32_t want = BitwiseCrc32c(seed, src.data() + off, n);
      ASSERT_EQ(Crc32cExtend(seed, src.data() + off, n), want) << n << " bytes at +" << off;
      ASSERT_EQ(Crc32cExtendCopy(seed, dst.data() + 5, src.data() + off, n), want) << n << " bytes at +" << off;
      ASSERT_EQ(std::memcmp(dst.data() + 5, src.data() + off, n), 0) << n << " bytes at +" << off;
    }
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
  static ChunkOptions Options(int64_t chunk_bytes, bool bf16 = false, int64_t version = 5) {
    ChunkOptions o;
    o.version = version;
    o.chunk_bytes = chunk_bytes;
    o.bf16 = bf16;
    o.config_json = "{}";
    return o;
  }
  std::vector<WeightChunk> Chunks(int64_t chunk_bytes, bool bf16 = false, int64_t version = 5) const {
    std::vector<WeightChunk> out;
    EXPECT_TRUE(ForEachWeightChunk(Tensors(), Options(chunk_bytes, bf16, version), [&](const WeightChunk& c) {
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

// The bytes of `b`, and `b` re-cut into slices at the given byte positions.
std::string Flatten(const grpc::ByteBuffer& b) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(b.Dump(&slices).ok());
  std::string s;
  for (const auto& x : slices) s.append(reinterpret_cast<const char*>(x.begin()), x.size());
  return s;
}
grpc::ByteBuffer Recut(const std::string& bytes, std::vector<size_t> cuts) {
  cuts.push_back(bytes.size());
  std::vector<grpc::Slice> slices;
  size_t at = 0;
  for (size_t c : cuts) {
    c = std::min(c, bytes.size());
    slices.emplace_back(bytes.data() + at, c - at);  // copies; empty slices included on purpose
    at = c;
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

// Feeds every part of a parsed message to the receiver.
absl::Status AddParts(WeightReceiver& rx, const ReceivedChunk& got) {
  for (const auto& p : got.parts) {
    absl::Status s = rx.Add(p.header, p.data);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

TEST(WeightChunkBufferTest, WireChunksAreTheProtoChunksAndStageWithoutCopies) {
  Fixture f;
  for (bool bf16 : {false, true}) {
    for (size_t per_message : {1, 3}) {
      const auto want = f.Chunks(256, bf16);
      const ChunkOptions o = Fixture::Options(256, bf16);
      int releases = 0, borrowed = 0;
      auto borrow = [&] { return BorrowHook{[](void* n) { ++*static_cast<int*>(n); }, &releases}; };
      std::vector<grpc::ByteBuffer> buffers;
      std::vector<WireChunk> pending;
      ASSERT_TRUE(ForEachWireWeightChunk(f.Tensors(), o, [&](WireChunk&& c) {
                    if (c.borrowed != nullptr) {
                      ++borrowed;
                      // F32 data is the tensor's own memory, not a copy.
                      const char* lo = reinterpret_cast<const char*>(f.src[0].data());
                      const bool in_a = c.borrowed >= lo && c.borrowed < lo + f.src[0].size() * 4;
                      const bool in_b = c.borrowed == reinterpret_cast<const char*>(f.src[1].data());
                      const bool in_c = c.borrowed == reinterpret_cast<const char*>(f.src[2].data());
                      EXPECT_TRUE(in_a || in_b || in_c);
                    }
                    pending.push_back(std::move(c));
                    if (pending.size() == per_message) {
                      buffers.push_back(WireChunksToByteBuffer(std::move(pending), borrow));
                      pending.clear();
                    }
                    return true;
                  }).ok());
      if (!pending.empty()) buffers.push_back(WireChunksToByteBuffer(std::move(pending), borrow));
      EXPECT_EQ(borrowed, bf16 ? 0 : static_cast<int>(want.size()));
      ASSERT_EQ(buffers.size(), (want.size() + per_message - 1) / per_message);
      auto rx = f.Receiver();
      ReceivedChunk got;
      size_t next = 0;
      for (size_t i = 0; i < buffers.size(); ++i) {
        WeightChunk proto;  // a plain protobuf parser reads the wire form: first chunk + batch
        ASSERT_TRUE(proto.ParseFromString(Flatten(buffers[i])));
        std::vector<WeightChunk> carried = {proto};
        carried[0].clear_batch();
        for (const auto& b : proto.batch()) carried.push_back(b);
        ASSERT_TRUE(ParseWeightChunkBuffer(buffers[i], &got).ok());
        ASSERT_EQ(got.parts.size(), carried.size());
        for (size_t j = 0; j < carried.size(); ++j, ++next) {
          ASSERT_LT(next, want.size());
          EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(carried[j], want[next])) << "chunk " << next;
          EXPECT_EQ(got.parts[j].header.data(), "");
          EXPECT_EQ(got.parts[j].header.batch_size(), 0);
        }
        ASSERT_TRUE(AddParts(rx, got).ok()) << "message " << i;
      }
      EXPECT_EQ(next, want.size());
      ASSERT_TRUE(rx.Finish().ok());
      if (!bf16) {
        EXPECT_EQ(f.dst, f.src);
      }
      got = ReceivedChunk();
      buffers.clear();
      EXPECT_EQ(releases, borrowed);  // every borrowed slice was handed back
    }
  }
}

TEST(WeightChunkBufferTest, ParsesAnySliceSplitAndFieldOrder) {
  Fixture f;
  for (bool bf16 : {false, true}) {
    const auto chunks = f.Chunks(256, bf16);
    std::mt19937 rng(bf16 ? 11 : 7);
    auto rx = f.Receiver();
    ReceivedChunk got;
    for (size_t i = 0; i < chunks.size(); i += 2) {
      WeightChunk message = chunks[i];  // every other message carries the next chunk as a batch entry
      if (i + 1 < chunks.size()) *message.add_batch() = chunks[i + 1];
      const std::string bytes = message.SerializeAsString();  // protobuf order: data in the middle, batch last
      std::vector<size_t> cuts;  // cut anywhere: inside varints, tags, data, and odd offsets (BF16 values)
      for (size_t at = 0; at < bytes.size(); at += 1 + rng() % 37) cuts.push_back(at);
      ASSERT_TRUE(ParseWeightChunkBuffer(Recut(bytes, cuts), &got).ok());
      ASSERT_EQ(got.parts.size(), i + 1 < chunks.size() ? 2u : 1u);
      for (size_t j = 0; j < got.parts.size(); ++j) {
        WeightChunk header = chunks[i + j];
        header.clear_data();
        EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got.parts[j].header, header));
        std::string data;
        for (auto p : got.parts[j].data) data.append(p.data(), p.size());
        EXPECT_EQ(data, chunks[i + j].data());
      }
      ASSERT_TRUE(AddParts(rx, got).ok());
    }
    ASSERT_TRUE(rx.Finish().ok());
    for (size_t t = 0; t < f.src.size(); ++t)
      for (size_t i = 0; i < f.src[t].size(); ++i)
        EXPECT_NEAR(f.dst[t][i], f.src[t][i], bf16 ? 1e-2 * std::fabs(f.src[t][i]) + 1e-6 : 0.0);
  }
}

TEST(WeightChunkBufferTest, ProtoReceiverTakesBatchedChunksToo) {
  Fixture f;
  const auto chunks = f.Chunks(256);
  WeightChunk message = chunks[0];
  for (size_t i = 1; i < chunks.size(); ++i) *message.add_batch() = chunks[i];
  auto rx = f.Receiver();
  ASSERT_TRUE(rx.Add(message).ok());
  ASSERT_TRUE(rx.Finish().ok());
  EXPECT_EQ(f.dst, f.src);
  *message.mutable_batch(1)->add_batch() = chunks[1];  // nested batches are refused
  auto rx2 = f.Receiver();
  EXPECT_NE(rx2.Add(message).message().find("batch in a batch"), std::string::npos);
}

TEST(WeightChunkBufferTest, MalformedMessagesAreInvalidArgument) {
  Fixture f;
  const std::string good = f.Chunks(256)[0].SerializeAsString();
  ReceivedChunk got;
  auto parse = [&](const std::string& bytes) { return ParseWeightChunkBuffer(Recut(bytes, {bytes.size() / 2}), &got); };
  ASSERT_TRUE(parse(good).ok());
  for (size_t cut : {good.size() - 1, good.size() / 2, size_t{1}}) {
    absl::Status s = parse(good.substr(0, cut));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << "truncated to " << cut << ": " << s;
  }
  std::string overrun = good;
  overrun += std::string("\x3a\x90\x4e", 3);  // data field claiming 10000 bytes that are not there
  EXPECT_NE(parse(overrun).message().find("claims 10000 bytes"), std::string::npos) << parse(overrun);
  EXPECT_NE(parse(good + std::string("\x0b", 1)).message().find("wire type 3"), std::string::npos);
  EXPECT_NE(parse(std::string("\x00\x01", 2)).message().find("field number 0"), std::string::npos);
  EXPECT_NE(parse(std::string("\x08\xff\xff", 3)).message().find("truncated varint"), std::string::npos);
  EXPECT_FALSE(ParseWeightChunkBuffer(grpc::ByteBuffer(), &got).ok());
  // Header fields that are not a valid WeightChunk (tensor as invalid UTF-8) are caught by protobuf.
  EXPECT_NE(parse(std::string("\x12\x02\xff\xfe", 4)).message().find("malformed header"), std::string::npos);
  // A batch entry whose last varint runs past the entry's length, and a batch inside a batch.
  EXPECT_NE(parse(good + std::string("\x62\x02\x08\x85\x01", 5)).message().find("overruns"), std::string::npos);
  EXPECT_NE(parse(good + std::string("\x62\x02\x62\x00", 4)).message().find("batch inside a batch"), std::string::npos);
}

}  // namespace
}  // namespace zerorl
