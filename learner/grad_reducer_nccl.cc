// The NCCL GradReducer (see grad_reducer.h): one NcclComm per rank, all in
// this process. Built only with zerorl_nccl (ZERORL_HAVE_NCCL).
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "learner/data_parallel.h"
#include "learner/grad_reducer.h"
#include "weights/nccl_comm.h"

namespace zerorl::learner {
namespace {

using weights::NcclComm;
using weights::NcclNewUniqueId;

class NcclGradReducer final : public GradReducer {
 public:
  explicit NcclGradReducer(std::unique_ptr<NcclComm> comm) : comm_(std::move(comm)) {}
  absl::Status AllReduceSum(float* buf, int64_t n) override { return comm_->AllReduce(buf, n, /*average=*/false); }
  int rank() const override { return comm_->rank(); }
  int nranks() const override { return comm_->nranks(); }
  const char* kind() const override { return "nccl"; }

 private:
  std::unique_ptr<NcclComm> comm_;
};

}  // namespace

bool HaveNcclGradReducer() { return true; }

absl::StatusOr<std::vector<std::unique_ptr<GradReducer>>> NewNcclGradReducers(const std::vector<int>& devices) {
  if (devices.empty()) return absl::InvalidArgumentError("NCCL gradient reducer: no devices");
  ZRL_ASSIGN_OR_RETURN(const std::string id, NcclNewUniqueId());
  const int R = static_cast<int>(devices.size());
  std::vector<std::unique_ptr<NcclComm>> comms(R);
  // ncclCommInitRank blocks until every rank has joined: one thread per rank.
  ZRL_RETURN_IF_ERROR(RunOnRanks(R, [&](int r) -> absl::Status {
    auto c = NcclComm::Create(id, R, r, devices[r]);
    if (!c.ok()) return Annotate(c.status(), absl::StrCat("NCCL rank ", r, " on cuda:", devices[r]));
    comms[r] = std::move(*c);
    return absl::OkStatus();
  }));
  std::vector<std::unique_ptr<GradReducer>> out;
  for (auto& c : comms) out.push_back(std::make_unique<NcclGradReducer>(std::move(c)));
  return out;
}

}  // namespace zerorl::learner
