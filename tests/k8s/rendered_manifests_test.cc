#include "tests/k8s/rendered_manifests.h"

#include <gtest/gtest.h>

namespace zerorl::testing {
namespace {

constexpr char kManifests[] = R"(apiVersion: v1
kind: Namespace
metadata: {name: rl}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: zerorl-config}
data:
  run.yaml: |
    run_id: x
    kubernetes: {cluster_domain: corp.internal}
---
apiVersion: v1
kind: Secret
metadata: {name: tok}
stringData: {token: abc}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: rollout}
spec:
  serviceName: rollout-hl
  replicas: 2
  template: {spec: {containers: [{name: c, ports: [{name: grpc, containerPort: 50051}]}]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: orchestrator}
spec:
  template: {spec: {containers: [{name: c}]}}
)";

TEST(RenderedManifestsTest, NamesPodsAndTheirDnsNamesAsTheClusterWould) {
  auto m = ParseRenderedManifests(kManifests);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->ns, "rl");
  EXPECT_EQ(m->cluster_domain, "corp.internal");
  EXPECT_EQ(m->secrets["tok"]["token"], "abc");
  ASSERT_EQ(m->workloads.size(), 2u);
  const auto pods = PodNames(*m);
  ASSERT_EQ(pods.size(), 3u);
  EXPECT_EQ(pods[0].name, "rollout-0");
  EXPECT_EQ(pods[0].dns_names,
            (std::vector<std::string>{"rollout-hl.rl.svc.corp.internal", "rollout-0.rollout-hl.rl.svc.corp.internal"}));
  EXPECT_EQ(pods[1].name, "rollout-1");
  EXPECT_EQ(pods[1].replica, 1);
  EXPECT_EQ(pods[1].dns_names, (std::vector<std::string>{"rollout-1.rollout-hl.rl.svc.corp.internal"}));
  EXPECT_EQ(pods[2].name, "orchestrator");
  EXPECT_EQ(pods[2].workload, 1u);
  EXPECT_EQ(pods[2].dns_names, (std::vector<std::string>{"orchestrator.rl.svc.corp.internal"}));
  EXPECT_EQ(NamedPort(m->workloads[0]["spec"]["template"]["spec"]["containers"][0], "grpc"), 50051);
  EXPECT_EQ(NamedPort(m->workloads[0]["spec"]["template"]["spec"]["containers"][0], "health"), 0);
}

TEST(RenderedManifestsTest, NotYamlAndUnrunnableKindsAreErrorsThatNameThem) {
  auto bad = ParseRenderedManifests("kind: [unclosed");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("not YAML"), std::string::npos) << bad.status();
  auto job = ParseRenderedManifests("kind: Job\nmetadata: {name: migrate}\n");
  ASSERT_FALSE(job.ok());
  EXPECT_NE(job.status().message().find("migrate"), std::string::npos) << job.status();
  EXPECT_NE(job.status().message().find("Job"), std::string::npos) << job.status();
}

TEST(RenderedManifestsTest, ExpandsEveryEnvVarOfAnArg) {
  EXPECT_EQ(ExpandEnvVars("--name=$(POD_NAME) --ip $(POD_IP) $(UNSET)", {{"POD_NAME", "rollout-1"}, {"POD_IP", "10.0.0.7"}}),
            "--name=rollout-1 --ip 10.0.0.7 $(UNSET)");
}

}  // namespace
}  // namespace zerorl::testing
