// `zerorl k8s render --config RUN.yaml [--image IMAGE] [--print-config]
//                    [--internal-token-file FILE | --no-internal-secret]`
//
// Prints the Kubernetes manifests of one run (cli/k8s_render.h) as a YAML
// stream, so `zerorl k8s render --config run.yaml | kubectl apply -f -`
// launches it. The reward spec named by reward.spec_path (relative to the
// working directory, else to the config file's directory or one above it) goes into the reward-spec
// ConfigMap; an inline reward.spec goes there too. --print-config prints only
// the run.yaml the pods load (how k8s/overlays/*/run.yaml are made). The
// actors' internal token Secret is rendered with a fresh random token unless
// --internal-token-file gives it or --no-internal-secret leaves it out.
#include <cstdio>
#include <filesystem>
#include <string>

#include <CLI/CLI.hpp>

#include "absl/strings/str_cat.h"
#include "cli/k8s_config.h"
#include "cli/k8s_render.h"
#include "cli/k8s_yaml.h"
#include "cli/commands.h"
#include "common/auth.h"
#include "common/config.h"
#include "zerorl/v1/reward.pb.h"

namespace zerorl {
namespace {

// The reward spec text for the ConfigMap, "" when the run uses its dataset's built-in spec.
absl::StatusOr<std::string> RewardSpecText(const zerorl::v1::RunConfig& config, const std::string& config_path) {
  const std::string& spec_path = config.reward().spec_path();
  if (spec_path.empty()) {
    return config.reward().has_spec() ? MessageToYaml(config.reward().spec()) : std::string();
  }
  // Relative paths: the working directory first (as the pods resolve them), then
  // the config's directory and the directories above it (a repo checkout).
  std::filesystem::path path(spec_path);
  if (path.is_relative() && !std::filesystem::exists(path)) {
    std::error_code ec;
    std::filesystem::path dir = std::filesystem::absolute(config_path, ec).parent_path();
    for (; !ec && !dir.empty(); dir = dir.parent_path()) {
      if (std::filesystem::exists(dir / spec_path)) {
        path = dir / spec_path;
        break;
      }
      if (dir == dir.root_path()) break;
    }
  }
  auto text = ReadFile(path.string());
  if (!text.ok()) {
    return absl::Status(text.status().code(), absl::StrCat("reward.spec_path: ", text.status().message()));
  }
  zerorl::v1::RewardSpec spec;
  if (auto s = MergeYamlInto(*text, path.string(), &spec); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("reward.spec_path: ", s.message()));
  }
  return *text;
}

// The internal token to render: the file's, none, or a fresh random one.
absl::StatusOr<std::string> InternalToken(const std::string& token_file, bool no_secret) {
  if (no_secret) return std::string();
  if (!token_file.empty()) {
    auto token = ReadTokenFile(token_file);
    if (!token.ok()) return absl::Status(token.status().code(), absl::StrCat("--internal-token-file: ", token.status().message()));
    return token;
  }
  return NewRandomToken();
}

int Render(const std::string& config_path, const std::string& image, bool print_config,
           const std::string& internal_token_file, bool no_internal_secret) {
  auto config = LoadRunConfig(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "zerorl k8s render: %s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  if (!image.empty()) config->mutable_kubernetes()->set_image(image);
  auto spec = RewardSpecText(*config, config_path);
  if (!spec.ok()) {
    std::fprintf(stderr, "zerorl k8s render: %s\n", std::string(spec.status().message()).c_str());
    return 2;
  }
  auto internal = InternalToken(internal_token_file, no_internal_secret);
  if (!internal.ok()) {
    std::fprintf(stderr, "zerorl k8s render: %s\n", std::string(internal.status().message()).c_str());
    return 2;
  }
  auto objects = RenderK8sObjects(*config, *spec, *internal);
  if (!objects.ok()) {
    std::fprintf(stderr, "zerorl k8s render: %s: %s\n", config_path.c_str(),
                 std::string(objects.status().message()).c_str());
    return objects.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  std::string out;
  if (print_config) {
    for (const auto& obj : *objects) {
      if (obj["kind"] == "ConfigMap" && obj["metadata"]["name"] == "zerorl-config") {
        out = obj["data"]["run.yaml"].get<std::string>();
      }
    }
  } else {
    const std::string ns = config->kubernetes().namespace_();
    out = absl::StrCat("# zerorl run ", config->run_id(), " in namespace ", ns, " (zerorl k8s render --config ", config_path,
                       ")\n# The pods start once the admin token Secret exists:\n#   kubectl -n ", ns,
                       " create secret generic zerorl-admin-token --from-literal=token=\"$(openssl rand -hex 32)\"\n",
                       internal->empty()
                           ? absl::StrCat("# and the actors' internal token Secret:\n#   kubectl -n ", ns,
                                          " create secret generic zerorl-internal-token "
                                          "--from-literal=token=\"$(openssl rand -hex 32)\"\n")
                           : "# Secret zerorl-internal-token below is the actors' shared secret; a new render makes a "
                             "new one\n# (keep it with --internal-token-file FILE, or --no-internal-secret once it "
                             "exists).\n",
                       JsonToYamlStream(*objects));
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace

int K8sCommand(int argc, char** argv) {
  CLI::App app{"Kubernetes manifests for zerorl runs.", "zerorl k8s"};
  app.require_subcommand(1);
  std::string config_path, image;
  bool print_config = false;
  CLI::App* render = app.add_subcommand("render", "print the manifests of a run (pipe to kubectl apply -f -)");
  render->add_option("--config", config_path, "RunConfig YAML; its kubernetes: section sizes the deployment")
      ->required();
  render->add_option("--image", image, "container image (overrides kubernetes.image)");
  render->add_flag("--print-config", print_config, "print only the run.yaml the pods load");
  std::string internal_token_file;
  bool no_internal_secret = false;
  render->add_option("--internal-token-file", internal_token_file,
                     "value of Secret zerorl-internal-token (default: a fresh random token)")
      ->check(CLI::ExistingFile);
  render->add_flag("--no-internal-secret", no_internal_secret,
                   "reference Secret zerorl-internal-token without rendering it (the operator creates it)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (!internal_token_file.empty() && no_internal_secret) {
    std::fprintf(stderr, "zerorl k8s render: --internal-token-file and --no-internal-secret exclude each other\n");
    return 2;
  }
  return Render(config_path, image, print_config, internal_token_file, no_internal_secret);
}

}  // namespace zerorl
