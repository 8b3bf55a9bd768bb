// Parallel UpdateWeights pushes (see weight_publisher.h).
#include "learner/weight_publisher.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/server.h"
#include "common/status.h"
#include "zerorl/v1/rollout.grpc.pb.h"

namespace zerorl::learner {

PublishResult PublishWeights(const std::vector<PublishTarget>& targets, const std::vector<WeightTensor>& tensors,
                             const ChunkOptions& options, std::chrono::milliseconds timeout) {
  PublishResult result;
  std::vector<absl::Status> status(targets.size());
  std::vector<int64_t> bytes(targets.size(), 0);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (size_t i = 0; i < targets.size(); ++i) {
    threads.emplace_back([&, i] {
      auto stub = zerorl::v1::RolloutService::NewStub(targets[i].channel);
      auto ctx = ContextWithDeadline(timeout);
      zerorl::v1::UpdateWeightsResponse resp;
      auto writer = stub->UpdateWeights(ctx.get(), &resp);
      absl::Status st = ForEachWeightChunk(tensors, options, [&](const zerorl::v1::WeightChunk& c) {
        return writer->Write(c);
      });
      writer->WritesDone();
      const grpc::Status end = writer->Finish();  // the server's verdict explains a broken stream
      if (!end.ok()) st = FromGrpcStatus(end);
      if (st.ok()) bytes[i] = resp.bytes();
      status[i] = st;
    });
  }
  for (auto& t : threads) t.join();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (size_t i = 0; i < targets.size(); ++i) {
    result.bytes += bytes[i];
    if (!status[i].ok()) result.errors.push_back(absl::StrCat(targets[i].address, ": ", status[i].ToString()));
  }
  result.mb_per_s = result.seconds > 0 ? result.bytes / result.seconds / 1e6 : 0;
  return result;
}

}  // namespace zerorl::learner
