// A Prometheus text-format /metrics endpoint (cpp-httplib) for a run: the last
// step's metrics as gauges `zerorl_<name>{run="<id>"}` plus process counters.
// Thread-safe: Update may be called while the server answers scrapes.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace httplib {
class Server;
}

namespace zerorl {

// Renders gauges in the Prometheus exposition format (names sanitised to [a-z0-9_]).
std::string RenderPrometheus(const std::string& run_id, const std::map<std::string, double>& gauges);

class PrometheusEndpoint {
 public:
  PrometheusEndpoint();
  ~PrometheusEndpoint();  // stops the server

  // Listens on host:port (port 0 picks one; see port()). Serves GET /metrics.
  absl::Status Start(const std::string& host, int port, const std::string& run_id);
  void Update(const std::map<std::string, double>& gauges);
  void Stop();
  int port() const { return port_; }

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  std::string run_id_;
  absl::Mutex mu_;
  std::map<std::string, double> gauges_ ABSL_GUARDED_BY(mu_);
};

}  // namespace zerorl
