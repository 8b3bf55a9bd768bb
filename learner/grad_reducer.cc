// The in-process host GradReducer (see grad_reducer.h) and, in builds
// without NCCL, the NCCL factory's FAILED_PRECONDITION.
#include "learner/grad_reducer.h"

#include <barrier>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace zerorl::learner {
namespace {

// State shared by the ranks of one host group.
struct HostGroup {
  explicit HostGroup(int n) : nranks(n), barrier(n), bufs(n, nullptr), sizes(n, 0) {}
  const int nranks;
  std::barrier<> barrier;
  std::vector<float*> bufs;     // [rank] host buffer of the current call
  std::vector<int64_t> sizes;  // [rank] its n
};

class HostGradReducer final : public GradReducer {
 public:
  HostGradReducer(std::shared_ptr<HostGroup> group, int rank, model::ops::Backend* backend)
      : group_(std::move(group)), rank_(rank), backend_(backend) {}

  absl::Status AllReduceSum(float* buf, int64_t n) override {
    HostGroup& g = *group_;
    const bool staged = backend_ != nullptr && !backend_->host_memory();
    float* host = buf;
    if (staged) {
      staging_.resize(static_cast<size_t>(n));
      backend_->Download(staging_.data(), buf, n * static_cast<int64_t>(sizeof(float)));
      host = staging_.data();
    }
    g.bufs[rank_] = host;
    g.sizes[rank_] = n;
    g.barrier.arrive_and_wait();  // every rank has published its buffer
    bool same = true;
    for (int64_t s : g.sizes) same = same && s == n;
    if (same) {
      // This rank's slice [lo, hi): buf_0 += buf_1 + ... in rank order, then copied to the others.
      const int64_t lo = n * rank_ / g.nranks, hi = n * (rank_ + 1) / g.nranks;
      float* acc = g.bufs[0];
      for (int k = 1; k < g.nranks; ++k) {
        const float* b = g.bufs[k];
        for (int64_t i = lo; i < hi; ++i) acc[i] += b[i];
      }
      for (int k = 1; k < g.nranks; ++k)
        if (hi > lo) std::memcpy(g.bufs[k] + lo, acc + lo, static_cast<size_t>(hi - lo) * sizeof(float));
    }
    g.barrier.arrive_and_wait();  // every slice is written: the buffers may be reused
    if (!same) {
      std::string ns;
      for (int64_t s : g.sizes) absl::StrAppend(&ns, ns.empty() ? "" : ", ", s);
      return absl::InvalidArgumentError(absl::StrCat("gradient all-reduce: ranks passed different sizes (", ns, ")"));
    }
    if (staged) backend_->Upload(buf, host, n * static_cast<int64_t>(sizeof(float)));
    return absl::OkStatus();
  }
  int rank() const override { return rank_; }
  int nranks() const override { return group_->nranks; }
  const char* kind() const override { return "host"; }

 private:
  std::shared_ptr<HostGroup> group_;
  const int rank_;
  model::ops::Backend* backend_;
  std::vector<float> staging_;  // [n] when the buffer is device memory
};

}  // namespace

std::vector<std::unique_ptr<GradReducer>> NewHostGradReducers(const std::vector<model::ops::Backend*>& backends) {
  auto group = std::make_shared<HostGroup>(static_cast<int>(backends.size()));
  std::vector<std::unique_ptr<GradReducer>> out;
  for (size_t r = 0; r < backends.size(); ++r)
    out.push_back(std::make_unique<HostGradReducer>(group, static_cast<int>(r), backends[r]));
  return out;
}

#ifndef ZERORL_HAVE_NCCL
bool HaveNcclGradReducer() { return false; }

absl::StatusOr<std::vector<std::unique_ptr<GradReducer>>> NewNcclGradReducers(const std::vector<int>&) {
  return absl::FailedPreconditionError("the NCCL gradient reducer needs a build with CUDA and NCCL");
}
#endif

}  // namespace zerorl::learner
