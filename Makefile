# imagehook — run `make help` for the targets.
GO        ?= go
BIN       ?= bin/imagehook
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    = -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)
FUZZTIME  ?= 20s
# The race detector needs cgo's C compiler; without one the tests still run, without it.
RACE      ?= $(shell command -v gcc >/dev/null 2>&1 && echo -race)
# The real etcd + kube-apiserver for the cluster tests, built once from Go modules and cached; the
# first build says what it is doing (it takes several minutes).
KUBE_ASSETS ?= $(shell hack/kube-testenv/build.sh)
# The OCI registry for the registry tests (distribution), built once and cached the same way.
REGISTRY_BIN ?= $(shell hack/registry/build.sh)
# Gitea, the forge of the pull-request tests, built once (with cgo, for SQLite) and cached.
GITEA_BIN ?= $(shell hack/gitea/build.sh)
# helm, for the chart's lint/template test, built once and cached.
HELM_BIN ?= $(shell hack/helm/build.sh)

REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null)
CREATED   ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
IMAGE_ARCHES := amd64 arm64

.PHONY: help build run test bench fuzz lint image image-push docker clean

help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build bin/imagehook.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) .

run: build ## Run the quickstart: local manifests repo, no cluster, mail printed to the log.
	$(BIN) serve

test: ## Run every test, with the race detector where gcc exists (builds the kube test servers on first use).
	KUBEBUILDER_ASSETS=$(KUBE_ASSETS) IMAGEHOOK_REGISTRY_BIN=$(REGISTRY_BIN) IMAGEHOOK_GITEA_BIN=$(GITEA_BIN) IMAGEHOOK_HELM_BIN=$(HELM_BIN) $(GO) test $(RACE) -count=1 -timeout 20m ./...

bench: ## Run the Go benchmarks and the end-to-end load run (figures in BENCHMARKS.md).
	KUBEBUILDER_ASSETS=$(KUBE_ASSETS) $(GO) test -run '^$$' -bench . -benchmem -count=1 ./manifests ./registry ./cluster
	$(GO) test -run '^$$' -bench BenchmarkPromotion -benchtime 10x -count=1 ./service
	KUBEBUILDER_ASSETS=$(KUBE_ASSETS) $(GO) test -tags loadtest -run 'TestLoad|TestHostileManifests|TestMonorepo|TestReplicas|TestWatchOverhead' -v -count=1 -timeout 60m ./loadtest

fuzz: ## Fuzz every parser of untrusted input for FUZZTIME each.
	$(GO) test ./imageref  -run '^$$' -fuzz FuzzParse      -fuzztime $(FUZZTIME)
	$(GO) test ./window    -run '^$$' -fuzz FuzzCompile    -fuzztime $(FUZZTIME)
	$(GO) test ./approval  -run '^$$' -fuzz FuzzCheck      -fuzztime $(FUZZTIME)
	$(GO) test ./manifests -run '^$$' -fuzz FuzzSetImage   -fuzztime $(FUZZTIME)
	$(GO) test ./manifests -run '^$$' -fuzz FuzzKustomize  -fuzztime $(FUZZTIME)
	$(GO) test ./manifests -run '^$$' -fuzz FuzzMarkersAndValues -fuzztime $(FUZZTIME)
	$(GO) test ./manifests -run '^$$' -fuzz FuzzBudget     -fuzztime $(FUZZTIME)
	$(GO) test ./registry  -run '^$$' -fuzz FuzzParsers    -fuzztime $(FUZZTIME)
	$(GO) test ./listener  -run '^$$' -fuzz FuzzAuthenticate -fuzztime $(FUZZTIME)
	$(GO) test ./forge     -run '^$$' -fuzz FuzzVerifyGitee -fuzztime $(FUZZTIME)
	$(GO) test ./listener  -run '^$$' -fuzz FuzzForgeDeliveries -fuzztime $(FUZZTIME)
	$(GO) test ./oci       -run '^$$' -fuzz FuzzTagListBudget -fuzztime $(FUZZTIME)
	$(GO) test ./config    -run '^$$' -fuzz FuzzParse      -fuzztime $(FUZZTIME)
	$(GO) test ./config    -run '^$$' -fuzz FuzzHooksJSON  -fuzztime $(FUZZTIME)
	$(GO) test ./fleetimport -run '^$$' -fuzz FuzzReadFleetYAML -fuzztime $(FUZZTIME)

# vet takes make test's build flags (-race), so that the two share one compile of every package.
lint: ## gofmt and go vet.
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet $(RACE) ./...

image: ## Build the container image for linux/amd64 and arm64 without a daemon: OCI layout bin/image, bin/image-linux-<arch>.tar.
	@for arch in $(IMAGE_ARCHES); do \
	  echo "building bin/linux-$$arch/imagehook"; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/linux-$$arch/imagehook . || exit 1; \
	done
	$(GO) run ./hack/image -version $(VERSION) -revision $(REVISION) -created $(CREATED) -out bin/image \
	  $(foreach a,$(IMAGE_ARCHES),$(a)=bin/linux-$(a)/imagehook)

image-push: image ## Push the image index to REGISTRY (make image-push REGISTRY=registry.example.com/team).
	@test -n "$(REGISTRY)" || { echo "set REGISTRY, e.g. make image-push REGISTRY=registry.example.com/team"; exit 1; }
	$(GO) run ./hack/image -push $(REGISTRY)/imagehook:$(VERSION) -out bin/image

docker: build ## Build the image with Docker or Podman from the Dockerfile (copies bin/imagehook; pulls nothing).
	$(or $(shell command -v docker 2>/dev/null),podman) build -t imagehook:$(VERSION) --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) .

clean: ## Remove build output and the quickstart data.
	rm -rf bin data
