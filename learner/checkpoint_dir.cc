// CheckpointDir: temp dir, completion marker, atomic rename, keep-last-N.
#include "learner/checkpoint_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace zerorl::learner {
namespace fs = std::filesystem;
namespace {

constexpr char kMarker[] = "COMPLETE";

void FsyncPath(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

absl::StatusOr<std::string> CheckpointDir::Write(int64_t step,
                                                 const std::function<absl::Status(const std::string&)>& fill) {
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create checkpoint dir ", root_, ": ", ec.message()));
  const std::string name = absl::StrFormat("step-%08d", step);
  const std::string tmp = absl::StrCat(root_, "/.tmp-", name, "-", ::getpid());
  const std::string final_path = absl::StrCat(root_, "/", name);
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", tmp, ": ", ec.message()));
  absl::Status st = fill(tmp);
  if (st.ok()) {
    std::ofstream(tmp + "/" + kMarker) << step << "\n";
    for (const auto& e : fs::directory_iterator(tmp, ec)) FsyncPath(e.path().string());
    FsyncPath(tmp);
    fs::remove_all(final_path, ec);
    fs::rename(tmp, final_path, ec);
    if (ec) st = absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", final_path, ": ", ec.message()));
    FsyncPath(root_);
  }
  if (!st.ok()) {
    fs::remove_all(tmp, ec);
    return st;
  }
  Prune();
  return final_path;
}

std::vector<CheckpointEntry> CheckpointDir::List() const {
  std::vector<CheckpointEntry> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root_, ec)) {
    const std::string name = e.path().filename().string();
    long long step = 0;
    char tail = 0;
    if (!e.is_directory() || std::sscanf(name.c_str(), "step-%lld%c", &step, &tail) != 1) continue;
    if (!fs::exists(e.path() / kMarker)) continue;
    out.push_back({e.path().string(), step});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  return out;
}

std::optional<CheckpointEntry> CheckpointDir::Latest() const {
  auto all = List();
  if (all.empty()) return std::nullopt;
  return all.back();
}

void CheckpointDir::Prune() {
  std::error_code ec;
  // Stale temporaries of crashed writers (other pids).
  for (const auto& e : fs::directory_iterator(root_, ec))
    if (e.path().filename().string().rfind(".tmp-", 0) == 0) fs::remove_all(e.path(), ec);
  if (keep_last_ <= 0) return;
  auto all = List();
  for (size_t i = 0; i + keep_last_ < all.size(); ++i) fs::remove_all(all[i].path, ec);
}

}  // namespace zerorl::learner
