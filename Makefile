# The two commands: `make demo` and `make test`. Both install what they need first.
# `make demo-hard` is the second demo (thinking length grows with accuracy, ~8 min).
# `make image` builds the container image, `make container-test` runs every actor in it.
BUILD ?= build
JOBS ?= $(shell nproc)
IMAGE ?= localhost/zerorl:dev

# Compile through ccache when it is there (scripts/install-deps installs it): a rebuild, and the
# image's build stage (scripts/build-image mounts the same cache), reuse what was compiled.
# Path-independent entries, so the tree at another path (the image's /src) hits them too.
# ccache also hashes the locale variables: compiles run without them, as in the image's build stage.
ifneq ($(shell command -v ccache 2>/dev/null),)
CCACHE_CMD := env;-u;LANG;-u;LC_ALL;-u;LC_CTYPE;-u;LC_MESSAGES;ccache
LAUNCHER := "-DCMAKE_C_COMPILER_LAUNCHER=$(CCACHE_CMD)" "-DCMAKE_CXX_COMPILER_LAUNCHER=$(CCACHE_CMD)" \
            "-DCMAKE_CUDA_COMPILER_LAUNCHER=$(CCACHE_CMD)"
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1
endif

.PHONY: all deps configure build test demo demo-hard clean image container-test

all: build

deps:
	@bash scripts/install-deps

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(LAUNCHER)

configure: $(BUILD)/build.ninja

build: deps configure
	cmake --build $(BUILD) -j $(JOBS)

# The container test has its own target (it needs the image).
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900 -LE container

demo: build
	bash scripts/demo

demo-hard: build
	bash scripts/demo-hard

# localhost/zerorl:dev, CPU only (WITH_CUDA=1 for the CUDA build), with docker or podman.
image: deps
	bash scripts/build-image $(IMAGE)

# Every actor as its own container of $(IMAGE), configured from `zerorl k8s render`
# (k8s/README.md, "How it is tested"). Builds only the host binaries the test drives.
container-test: deps configure image
	cmake --build $(BUILD) -j $(JOBS) --target zerorlctl reward_sandbox_test container_test
	cd $(BUILD) && ZERORL_IMAGE=$(IMAGE) ZERORL_CONTAINER_TEST_REQUIRED=1 \
	  ctest -V --timeout 1500 -L container

clean:
	rm -rf $(BUILD)
