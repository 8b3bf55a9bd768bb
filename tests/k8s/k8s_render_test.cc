// Unit tests of `zerorl k8s render`'s pieces: the YAML emitter reads back as
// what it wrote, the run config survives the ConfigMap round trip, bad
// kubernetes: settings are refused naming the key, and the objects follow the config.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "cli/k8s_config.h"
#include "cli/k8s_render.h"
#include "cli/k8s_yaml.h"
#include "common/config.h"

namespace zerorl {
namespace {

using nlohmann::ordered_json;

TEST(K8sYaml, StringsReadBackUnchanged) {
  const std::vector<std::string> strings = {
      "plain", "true", "False", "null", "~", "50051", "1e3", "0x1F", "", " lead", "trail ", "a: b", "- x",
      "#comment", "$(POD_IP):50052", "nvidia.com/gpu", "zerorl:0.1.0", "quote\"d", "back\\slash", "tab\there",
      "one\n", "two\nlines", "keep\n\n", "\n  indented first\nsecond\n", "ünïcode ✓", "ends:", "@at", "*star",
      "key=value", "yes", "on", "N"};
  ordered_json obj = ordered_json::object();
  for (size_t i = 0; i < strings.size(); ++i) obj["k" + std::to_string(i)] = strings[i];
  obj["list"] = strings;
  const std::string yaml = JsonToYaml(obj);
  YAML::Node back = YAML::Load(yaml);
  for (size_t i = 0; i < strings.size(); ++i) {
    EXPECT_EQ(back["k" + std::to_string(i)].as<std::string>(), strings[i]) << "in:\n" << yaml;
    EXPECT_EQ(back["list"][i].as<std::string>(), strings[i]) << "in:\n" << yaml;
  }
}

TEST(K8sYaml, NestedShapesAndScalarTypes) {
  ordered_json obj = {{"a", {{"b", {1, 2}}, {"c", ordered_json::object()}, {"d", ordered_json::array()}}},
                      {"items", {{{"name", "x"}, {"port", 80}}, {{"name", "y"}, {"on", false}}}},
                      {"f", 0.25},
                      {"n", nullptr}};
  YAML::Node back = YAML::Load(JsonToYaml(obj));
  EXPECT_EQ(back["a"]["b"][1].as<int>(), 2);
  EXPECT_TRUE(back["a"]["c"].IsMap());
  EXPECT_EQ(back["a"]["c"].size(), 0u);
  EXPECT_TRUE(back["a"]["d"].IsSequence());
  EXPECT_EQ(back["items"][0]["port"].as<int>(), 80);
  EXPECT_EQ(back["items"][1]["name"].as<std::string>(), "y");
  EXPECT_FALSE(back["items"][1]["on"].as<bool>());
  EXPECT_DOUBLE_EQ(back["f"].as<double>(), 0.25);
  EXPECT_TRUE(back["n"].IsNull());
  const std::string stream = JsonToYamlStream({obj, obj});
  EXPECT_EQ(YAML::LoadAll(stream).size(), 2u);
}

zerorl::v1::RunConfig Finalized(const std::string& yaml) {
  auto c = ParseRunConfig(yaml, "test.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : DefaultRunConfig();
}

TEST(K8sConfig, OverridesRoundTripIncludingValuesThatEqualProtoDefaults) {
  // watch_spec false and progress false are proto3 defaults but not zerorl defaults.
  auto c = Finalized(
      "run_id: rt\nreward: {watch_spec: false}\nrollout: {sampling: {temperature: 0.7, stop: [\"</answer>\"]}}\n"
      "learner: {grpo: {loss_aggregation: grpo}}\norchestrator: {mode: async}\n");
  auto cluster = InClusterConfig(c, /*has_spec_file=*/true);
  auto yaml = ConfigOverridesYaml(cluster);
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  EXPECT_NE(yaml->find("watch_spec: false"), std::string::npos) << *yaml;
  EXPECT_NE(yaml->find("temperature: 0.7\n"), std::string::npos) << *yaml;
  EXPECT_EQ(yaml->find("group_size"), std::string::npos) << "defaults are left out:\n" << *yaml;
  auto back = ParseRunConfig(*yaml, "back");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->reward().spec_path(), kPodRewardFile);
  EXPECT_EQ(back->server().token_file(), kPodTokenFile);
  EXPECT_EQ(back->server().internal_token_file(), kPodInternalTokenFile);
  EXPECT_EQ(back->server().health_port(), kDefaultHealthPort);
  EXPECT_EQ(back->buffer().address(), "buffer.zerorl.svc.cluster.local:50054");
  ASSERT_EQ(back->reward().workers_size(), 2);
  EXPECT_EQ(back->reward().workers(1), "reward-1.reward.zerorl.svc.cluster.local:50053");
  ASSERT_EQ(back->rollout().workers_size(), 2);
  EXPECT_EQ(back->rollout().workers(0), "rollout-0.rollout.zerorl.svc.cluster.local:50052");
  EXPECT_EQ(back->run_dir(), "/var/lib/zerorl/run");
  EXPECT_FALSE(back->orchestrator().progress());
}

std::string RenderError(const std::string& yaml) {
  auto objects = RenderK8sObjects(Finalized(yaml), "");
  return objects.ok() ? "" : std::string(objects.status().message());
}

// Actor calls are locked by default: the internal token Secret is rendered
// when given (else only referenced) and mounted in every pod where the
// pods' run.yaml reads it.
TEST(K8sRender, EveryPodMountsTheInternalTokenTheConfigNames) {
  for (const std::string token : {"s3cret-internal", ""}) {
    auto objects = RenderK8sObjects(Finalized("run_id: it"), "", token);
    ASSERT_TRUE(objects.ok()) << objects.status();
    int secrets = 0, pods = 0;
    for (const auto& o : *objects) {
      if (o["kind"] == "Secret") {
        ++secrets;
        EXPECT_EQ(o["metadata"]["name"], "zerorl-internal-token");
        EXPECT_EQ(o["stringData"]["token"], token);
      }
      if (o["kind"] == "ConfigMap" && o["metadata"]["name"] == "zerorl-config") {
        auto run = ParseRunConfig(o["data"]["run.yaml"].get<std::string>(), "run.yaml");
        ASSERT_TRUE(run.ok()) << run.status();
        EXPECT_EQ(run->server().internal_token_file(), kPodInternalTokenFile);
      }
      if (o["kind"] != "Deployment" && o["kind"] != "StatefulSet") continue;
      ++pods;
      const auto& spec = o["spec"]["template"]["spec"];
      std::string volume;
      for (const auto& v : spec["volumes"])
        if (v.contains("secret") && v["secret"]["secretName"] == "zerorl-internal-token") volume = v["name"];
      ASSERT_FALSE(volume.empty()) << o["metadata"]["name"];
      bool mounted = false;
      for (const auto& m : spec["containers"][0]["volumeMounts"])
        mounted |= m["name"] == volume && m["mountPath"] == kPodInternalTokenDir && m["readOnly"] == true;
      EXPECT_TRUE(mounted) << o["metadata"]["name"];
    }
    EXPECT_EQ(secrets, token.empty() ? 0 : 1);
    EXPECT_EQ(pods, 5);
  }
}

TEST(K8sRender, RefusesBadSettingsNamingTheKey) {
  EXPECT_NE(RenderError("kubernetes: {namespace: Bad_NS}").find("kubernetes.namespace"), std::string::npos);
  EXPECT_NE(RenderError("kubernetes: {rollout_replicas: 0}").find("kubernetes.rollout_replicas"), std::string::npos);
  EXPECT_NE(RenderError("kubernetes: {storage_size: ten}").find("kubernetes.storage_size"), std::string::npos);
  EXPECT_NE(RenderError("kubernetes: {learner: {memory: lots}}").find("kubernetes.learner.memory"), std::string::npos);
  EXPECT_NE(RenderError("kubernetes: {image_pull_policy: Sometimes}").find("image_pull_policy"), std::string::npos);
  EXPECT_NE(RenderError("server: {health_port: 50052}").find("server.health_port"), std::string::npos);
  EXPECT_NE(RenderError("rollout: {listen_port: 0}").find("rollout.listen_port"), std::string::npos);
  EXPECT_NE(RenderError("run_id: _x").find("run_id"), std::string::npos);
  EXPECT_EQ(RenderError("run_id: ok"), "");
}

const ordered_json* Find(const std::vector<ordered_json>& objs, const std::string& kind, const std::string& name) {
  for (const auto& o : objs) {
    if (o["kind"] == kind && o["metadata"]["name"] == name) return &o;
  }
  return nullptr;
}

TEST(K8sRender, ObjectsFollowTheConfig) {
  auto objects = RenderK8sObjects(
      Finalized("run_id: r1\nkubernetes: {image: reg/zerorl:9, namespace: ns1, rollout_replicas: 3, rollout_gpus: 2,"
                " learner_gpus: 4, reward_replicas: 5, storage_size: 7Gi, storage_class: fast}\n"),
      "name: s\n");
  ASSERT_TRUE(objects.ok()) << objects.status();
  EXPECT_EQ((*objects)[0]["kind"], "Namespace");
  EXPECT_EQ((*objects)[0]["metadata"]["name"], "ns1");
  const ordered_json* rollout = Find(*objects, "StatefulSet", "rollout");
  ASSERT_NE(rollout, nullptr);
  EXPECT_EQ((*rollout)["spec"]["replicas"], 3);
  const auto& rc = (*rollout)["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(rc["image"], "reg/zerorl:9");
  EXPECT_EQ(rc["resources"]["limits"]["nvidia.com/gpu"], 2);
  EXPECT_EQ(rc["args"][5], "$(POD_NAME).rollout.ns1.svc.cluster.local:50052");
  const ordered_json* learner = Find(*objects, "StatefulSet", "learner");
  ASSERT_NE(learner, nullptr);
  EXPECT_EQ((*learner)["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"], 4);
  const ordered_json* buffer = Find(*objects, "StatefulSet", "buffer");
  ASSERT_NE(buffer, nullptr);
  EXPECT_EQ((*buffer)["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"], "7Gi");
  EXPECT_EQ((*buffer)["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"], "fast");
  EXPECT_EQ(Find(*objects, "StatefulSet", "reward")->at("spec")["replicas"], 5);
  ASSERT_NE(Find(*objects, "ConfigMap", "zerorl-reward-spec"), nullptr);
  EXPECT_EQ(Find(*objects, "ConfigMap", "zerorl-reward-spec")->at("data")["spec.yaml"], "name: s\n");
  EXPECT_EQ(Find(*objects, "Service", "buffer")->at("spec")["clusterIP"], "None");
  EXPECT_NE(Find(*objects, "NetworkPolicy", "reward-isolation"), nullptr);
  // Without a spec there is no reward-spec ConfigMap and nothing mounts one.
  auto plain = RenderK8sObjects(Finalized("run_id: r2\n"), "");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(Find(*plain, "ConfigMap", "zerorl-reward-spec"), nullptr);
  EXPECT_EQ(JsonToYamlStream(*plain).find("reward-spec"), std::string::npos);
}

}  // namespace
}  // namespace zerorl
