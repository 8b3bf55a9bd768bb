// NcclComm tests. The id-file exchange and argument checks run everywhere;
// the collectives need a CUDA device and are SKIPPED with the reason without
// one. With one device, a single-rank communicator still runs a real
// all-reduce (sum and average) and broadcast through NCCL.
#include "weights/nccl_comm.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "model/ops/cuda/cuda_backend.h"
#include "model/ops/cuda/device_memory.h"

namespace zerorl::weights {
namespace {

std::string TempPath(const std::string& name) {
  return std::string(::testing::TempDir()) + "/" + name + "_" + std::to_string(::getpid());
}

TEST(NcclIdFile, RoundTripsAndWaitsForTheWriter) {
  const std::string path = TempPath("nccl_id");
  std::remove(path.c_str());
  const std::string id(128, '\x5a');
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_TRUE(WriteNcclIdFile(path, id).ok());
  });
  auto got = ReadNcclIdFile(path, absl::Seconds(10));  // polls until rank 0 has written it
  writer.join();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, id);
  std::remove(path.c_str());
}

TEST(NcclIdFile, ClearErrors) {
  const std::string path = TempPath("nccl_id_missing");
  std::remove(path.c_str());
  auto missing = ReadNcclIdFile(path, absl::Milliseconds(50));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(std::string(missing.status().message()).find("is rank 0 running"), std::string::npos);
  EXPECT_EQ(WriteNcclIdFile(path, "short").code(), absl::StatusCode::kInvalidArgument);
  { std::ofstream(path) << "not an id"; }
  auto bad = ReadNcclIdFile(path, absl::Seconds(1));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  std::remove(path.c_str());
}

TEST(NcclComm, RejectsBadArgumentsBeforeTouchingADevice) {
  EXPECT_EQ(NcclComm::Create("short", 1, 0, 0).status().code(), absl::StatusCode::kInvalidArgument);
  const std::string id(128, '\0');
  EXPECT_EQ(NcclComm::Create(id, 2, 2, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NcclComm::Create(id, 0, 0, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NcclComm, SingleRankAllReduceAndBroadcast) {
  absl::Status st = model::ops::CudaDeviceStatus(0);
  if (!st.ok()) GTEST_SKIP() << st.message();
  auto id = NcclNewUniqueId();
  ASSERT_TRUE(id.ok()) << id.status();
  auto comm = NcclComm::Create(*id, 1, 0, 0);
  ASSERT_TRUE(comm.ok()) << comm.status();
  const int64_t n = 1000;
  std::vector<float> h(n);
  for (int64_t i = 0; i < n; ++i) h[i] = 0.5f * static_cast<float>(i);
  auto buf = model::ops::DeviceBuffer::Allocate(n * 4, 0, "grads");
  ASSERT_TRUE(buf.ok()) << buf.status();
  ASSERT_TRUE(buf->Upload(h.data(), n * 4).ok());
  ASSERT_TRUE((*comm)->AllReduce(buf->f32(), n).ok());
  ASSERT_TRUE((*comm)->AllReduce(buf->f32(), n, /*average=*/true).ok());
  ASSERT_TRUE((*comm)->Broadcast(buf->f32(), n, 0).ok());
  std::vector<float> out(n);
  ASSERT_TRUE(buf->Download(out.data(), n * 4).ok());
  EXPECT_EQ(out, h);  // one rank: sum, mean and broadcast are all the identity
  EXPECT_EQ((*comm)->Broadcast(buf->f32(), n, 1).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace zerorl::weights
