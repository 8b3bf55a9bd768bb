// Prometheus endpoint (see prometheus.h).
#include "orchestrator/prometheus.h"

#include <httplib.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace zerorl {
namespace {
std::string Sanitise(const std::string& name) {
  std::string out;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    out.push_back(ok ? c : (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : '_');
  }
  return out;
}
std::string EscapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}
}  // namespace

std::string RenderPrometheus(const std::string& run_id, const std::map<std::string, double>& gauges) {
  std::string out;
  for (const auto& [name, value] : gauges) {
    const std::string metric = "zerorl_" + Sanitise(name);
    absl::StrAppend(&out, "# TYPE ", metric, " gauge\n", metric, "{run=\"", EscapeLabel(run_id), "\"} ",
                    std::isfinite(value) ? absl::StrFormat("%.10g", value) : std::string("NaN"), "\n");
  }
  return out;
}

PrometheusEndpoint::PrometheusEndpoint() : server_(std::make_unique<httplib::Server>()) {}

PrometheusEndpoint::~PrometheusEndpoint() { Stop(); }

absl::Status PrometheusEndpoint::Start(const std::string& host, int port, const std::string& run_id) {
  run_id_ = run_id;
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    std::map<std::string, double> copy;
    {
      absl::MutexLock l(&mu_);
      copy = gauges_;
    }
    res.set_content(RenderPrometheus(run_id_, copy), "text/plain; version=0.0.4");
  });
  if (port == 0) {
    port_ = server_->bind_to_any_port(host.c_str());
  } else {
    port_ = server_->bind_to_port(host.c_str(), port) ? port : -1;
  }
  if (port_ <= 0) return absl::UnavailableError(absl::StrCat("metrics endpoint: cannot listen on ", host, ":", port));
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return absl::OkStatus();
}

void PrometheusEndpoint::Update(const std::map<std::string, double>& gauges) {
  absl::MutexLock l(&mu_);
  for (const auto& [k, v] : gauges) gauges_[k] = v;
}

void PrometheusEndpoint::Stop() {
  if (thread_.joinable()) {
    server_->stop();
    thread_.join();
  }
}

}  // namespace zerorl
