// Run state persistence (see run_state.h).
#include "orchestrator/run_state.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/json.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace zerorl {
namespace {
using json = nlohmann::ordered_json;

absl::Status WriteFileSynced(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::PermissionDeniedError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return absl::DataLossError(absl::StrCat("writing ", path, ": ", std::strerror(errno)));
    }
    off += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced) return absl::DataLossError(absl::StrCat("fsync ", path, " failed"));
  return absl::OkStatus();
}
}  // namespace

absl::Status SaveRunState(const std::string& path, const RunStateRecord& s) {
  json j;
  j["run_id"] = s.run_id;
  j["state"] = zerorl::v1::RunState_Name(s.state);
  j["step"] = s.step;
  j["cursor"] = {{"epoch", s.cursor.epoch}, {"index", s.cursor.index}};
  j["rng_state"] = s.rng_state;
  j["policy_version"] = s.policy_version;
  j["reward_spec_version"] = s.reward_spec_version;
  j["started_unix_ms"] = s.started_unix_ms;
  j["error"] = s.error;
  if (s.has_base_eval) j["base_eval_accuracy"] = s.base_eval_accuracy;
  json workers = json::array();
  for (const auto& w : s.workers) {
    workers.push_back({{"id", w.id()},
                       {"role", zerorl::v1::WorkerRole_Name(w.role())},
                       {"address", w.address()},
                       {"version", w.version()},
                       {"last_heartbeat_unix_ms", w.last_heartbeat_unix_ms()}});
  }
  j["workers"] = workers;
  const std::string tmp = path + ".tmp";
  ZRL_RETURN_IF_ERROR(WriteFileSynced(tmp, j.dump(2) + "\n"));
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("renaming ", tmp, " to ", path, ": ", std::strerror(errno)));
  }
  const std::string dir = std::filesystem::path(path).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return absl::OkStatus();
}

absl::StatusOr<RunStateRecord> LoadRunState(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("no run state at ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  RunStateRecord s;
  if (auto st = CheckJsonDepth(ss.str()); !st.ok()) return absl::DataLossError(absl::StrCat(path, ": ", st.message()));
  try {
    json j = json::parse(ss.str());
    s.run_id = j.at("run_id").get<std::string>();
    zerorl::v1::RunState st;
    if (!zerorl::v1::RunState_Parse(j.at("state").get<std::string>(), &st)) {
      return absl::DataLossError(absl::StrCat(path, ": unknown run state \"", j.at("state").get<std::string>(), "\""));
    }
    s.state = st;
    s.step = j.at("step").get<int64_t>();
    s.cursor.epoch = j.at("cursor").at("epoch").get<int64_t>();
    s.cursor.index = j.at("cursor").at("index").get<int64_t>();
    s.rng_state = j.at("rng_state").get<uint64_t>();
    s.policy_version = j.at("policy_version").get<int64_t>();
    s.reward_spec_version = j.at("reward_spec_version").get<int64_t>();
    s.started_unix_ms = j.value("started_unix_ms", int64_t{0});
    s.error = j.value("error", std::string());
    if (j.contains("base_eval_accuracy")) {
      s.has_base_eval = true;
      s.base_eval_accuracy = j["base_eval_accuracy"].get<double>();
    }
    for (const auto& w : j.value("workers", json::array())) {
      zerorl::v1::WorkerInfo info;
      info.set_id(w.at("id").get<std::string>());
      zerorl::v1::WorkerRole role;
      if (zerorl::v1::WorkerRole_Parse(w.at("role").get<std::string>(), &role)) info.set_role(role);
      info.set_address(w.at("address").get<std::string>());
      info.set_version(w.value("version", int64_t{0}));
      info.set_last_heartbeat_unix_ms(w.value("last_heartbeat_unix_ms", int64_t{0}));
      s.workers.push_back(std::move(info));
    }
  } catch (const json::exception& e) {
    return absl::DataLossError(absl::StrCat(path, ": unreadable run state (", e.what(), ")"));
  }
  if (s.step < 0) return absl::DataLossError(absl::StrCat(path, ": negative step"));
  return s;
}

}  // namespace zerorl
