// Persistent sandboxed Python reward workers (contract in python_term.h).
#include "reward/python_term.h"

#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "common/json.h"
#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/log.h"
#include "common/status.h"

namespace zerorl::reward {
namespace {

constexpr const char* kWorker = R"PY(import json, math, os, sys
sys.path.insert(0, ".")
proto = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)  # user prints go to stderr, never into the protocol
def send(obj):
    proto.write(json.dumps(obj) + "\n")
    proto.flush()
try:
    import user_reward
    fn = getattr(user_reward, "reward")
    if not callable(fn):
        raise TypeError("reward is not callable")
except BaseException as e:
    send({"ready": False, "error": "%s: %s" % (type(e).__name__, e)})
    sys.exit(0)
send({"ready": True})
for line in sys.stdin:
    try:
        req = json.loads(line)
        v = fn(req["prompt"], req["completion"], req["answer"], **req["meta"])
        v = float(v)
        if not math.isfinite(v):
            raise ValueError("reward returned %r" % v)
        send({"ok": True, "value": v})
    except Exception as e:
        send({"ok": False, "error": "%s: %s" % (type(e).__name__, e)})
)PY";

}  // namespace

struct PythonTerm::Worker {
  Sandbox* sandbox = nullptr;
  SandboxProcess proc;
  std::string pending;  // bytes read past the last line
  ~Worker() {
    if (sandbox != nullptr) sandbox->Kill(&proc);
  }
};

absl::StatusOr<std::unique_ptr<PythonTerm>> PythonTerm::Create(std::shared_ptr<Sandbox> sandbox,
                                                               const std::string& file, double timeout_s,
                                                               int max_workers, const SandboxLimits& limits) {
  std::unique_ptr<PythonTerm> t(new PythonTerm());
  ZRL_ASSIGN_OR_RETURN(t->source_, ReadFile(file));
  t->sandbox_ = std::move(sandbox);
  t->timeout_s_ = timeout_s > 0 ? timeout_s : 2.0;
  t->max_workers_ = std::max(1, max_workers);
  t->limits_ = limits;
  t->limits_.cpu_seconds = 3600;  // a long-lived worker; each call is bounded by timeout_s instead
  auto w = t->StartWorker();
  if (!w.ok()) return Annotate(w.status(), absl::StrCat("python term ", file));
  {
    absl::MutexLock lock(&t->mu_);
    t->idle_.push_back(std::move(*w));
    t->live_ = 1;
  }
  return t;
}

PythonTerm::~PythonTerm() = default;

int PythonTerm::restarts() const {
  absl::MutexLock lock(&mu_);
  return restarts_;
}

absl::StatusOr<std::unique_ptr<PythonTerm::Worker>> PythonTerm::StartWorker() {
  auto w = std::make_unique<Worker>();
  ZRL_ASSIGN_OR_RETURN(w->proc, sandbox_->Spawn({sandbox_->python(), "-I", "worker.py"}, limits_,
                                                {{"worker.py", kWorker}, {"user_reward.py", source_}}));
  w->sandbox = sandbox_.get();
  ZRL_ASSIGN_OR_RETURN(std::string hello, Exchange(w.get(), ""));
  auto j = CheckJsonDepth(hello).ok() ? nlohmann::json::parse(hello, nullptr, false)
                                      : nlohmann::json(nlohmann::json::value_t::discarded);
  if (j.is_discarded() || !j.is_object() || !j.value("ready", false)) {
    std::string err = j.is_object() ? j.value("error", hello) : hello;
    return absl::InvalidArgumentError(absl::StrCat("python reward file does not load: ", err));
  }
  return w;
}

// Sends `line` (unless empty) and reads one reply line within the timeout.
absl::StatusOr<std::string> PythonTerm::Exchange(Worker* w, const std::string& line) {
  if (!line.empty()) {
    std::string msg = line + "\n";
    size_t off = 0;
    while (off < msg.size()) {
      ssize_t n = write(w->proc.stdin_fd, msg.data() + off, msg.size() - off);
      if (n <= 0) return absl::InternalError("python worker closed its stdin");
      off += static_cast<size_t>(n);
    }
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(timeout_s_ * 1000));
  while (true) {
    size_t nl = w->pending.find('\n');
    if (nl != std::string::npos) {
      std::string out = w->pending.substr(0, nl);
      w->pending.erase(0, nl + 1);
      return out;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return absl::DeadlineExceededError("python reward timed out");
    struct pollfd fds[2] = {{w->proc.stdout_fd, POLLIN, 0}, {w->proc.stderr_fd, POLLIN, 0}};
    if (poll(fds, 2, static_cast<int>(left.count())) < 0) continue;
    char buf[65536];
    if (fds[1].revents != 0) {  // drain stderr so user prints never block the worker
      if (read(w->proc.stderr_fd, buf, sizeof buf) <= 0) fds[1].fd = -1;
    }
    if (fds[0].revents != 0) {
      ssize_t n = read(w->proc.stdout_fd, buf, sizeof buf);
      if (n <= 0) return absl::InternalError("python worker exited");
      w->pending.append(buf, static_cast<size_t>(n));
      if (w->pending.size() > (1 << 20)) return absl::InternalError("python worker reply too long");
    }
  }
}

absl::StatusOr<double> PythonTerm::Call(const std::string& prompt, const std::string& completion,
                                        const std::string& answer_json, const std::string& meta_json) {
  std::unique_ptr<Worker> w;
  {
    absl::MutexLock lock(&mu_);
    while (idle_.empty() && live_ >= max_workers_) idle_cv_.Wait(&mu_);
    if (!idle_.empty()) {
      w = std::move(idle_.back());
      idle_.pop_back();
    } else {
      ++live_;
    }
  }
  absl::Status failure;
  if (w == nullptr) {
    auto started = StartWorker();
    if (!started.ok()) {
      absl::MutexLock lock(&mu_);
      --live_;
      idle_cv_.Signal();
      return started.status();
    }
    w = std::move(*started);
  }
  nlohmann::json req;
  req["prompt"] = prompt;
  req["completion"] = completion;
  req["answer"] = CheckJsonDepth(answer_json).ok() ? nlohmann::json::parse(answer_json, nullptr, false)
                                                   : nlohmann::json(nlohmann::json::value_t::discarded);
  if (req["answer"].is_discarded()) req["answer"] = answer_json;
  req["meta"] = CheckJsonDepth(meta_json).ok() ? nlohmann::json::parse(meta_json, nullptr, false)
                                               : nlohmann::json::object();
  if (!req["meta"].is_object()) req["meta"] = nlohmann::json::object();
  auto reply = Exchange(w.get(), req.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  absl::StatusOr<double> result;
  bool healthy = true;
  if (!reply.ok()) {
    result = reply.status();
    healthy = false;
  } else {
    auto j = CheckJsonDepth(*reply).ok() ? nlohmann::json::parse(*reply, nullptr, false)
                                         : nlohmann::json(nlohmann::json::value_t::discarded);
    if (j.is_discarded() || !j.is_object()) {
      result = absl::InternalError("python worker sent garbage");
      healthy = false;
    } else if (j.value("ok", false) && j.contains("value") && j["value"].is_number()) {
      result = j["value"].get<double>();
    } else {
      result = absl::InvalidArgumentError(absl::StrCat("reward() failed: ", j.value("error", std::string("?"))));
    }
  }
  absl::MutexLock lock(&mu_);
  if (healthy) {
    idle_.push_back(std::move(w));
  } else {
    ZLOG(WARNING) << "python reward worker replaced: " << result.status().message();
    w.reset();  // kills the sandboxed process
    --live_;
    ++restarts_;
  }
  idle_cv_.Signal();
  return result;
}

}  // namespace zerorl::reward
