# zk2raft — build, test and demo on a fresh Debian machine.
#   make test    installs what it needs (ZooKeeper 3.8 + Java from Debian, Go modules),
#                then runs go vet, gofmt and the race-enabled test suite.
#   make demo    runs the main job on a local demo setup.
#   make bench   runs the benchmarks and prints the ratios recorded in BENCHMARKS.md.
#   make fuzz    runs every fuzz target for FUZZTIME each.

GO        ?= go
FUZZTIME  ?= 30s
BIN       := bin/zk2raft
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all build deps deps-system deps-go test vet fmt-check unit demo bench fuzz clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/zk2raft

# ZooKeeper 3.8 from Debian's package (it brings a Java runtime), kazoo,
# Curator and a JDK (the independent clients of zkserver's tests), and socat
# (the proxy benchmarks' relay not written here), unless present.
DEB_PACKAGES := zookeeper default-jre-headless default-jdk-headless python3-kazoo libcurator-framework-java libcurator-recipes-java socat

deps: deps-system deps-go

deps-system:
	@if [ -f /usr/share/java/zookeeper.jar ] && command -v java >/dev/null 2>&1 && command -v javac >/dev/null 2>&1 \
		&& [ -f /usr/share/java/curator-recipes.jar ] && [ -f /usr/share/java/curator-framework.jar ] \
		&& /usr/bin/python3 -c 'import kazoo' >/dev/null 2>&1 && command -v socat >/dev/null 2>&1; then \
		echo "deps: ZooKeeper, Java (JDK), Curator, kazoo and socat present"; \
	else \
		echo "deps: installing Debian's $(DEB_PACKAGES)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		if ! apt-cache show $(DEB_PACKAGES) >/dev/null 2>&1; then $(SUDO) apt-get update -qq; fi; \
		$(SUDO) apt-get install -y -qq --no-install-recommends $(DEB_PACKAGES) \
			|| { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $(DEB_PACKAGES); }; \
	fi

deps-go:
	$(GO) mod download

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt: not formatted:"; echo "$$out"; exit 1; fi

test: deps vet fmt-check
	$(GO) test -race -timeout 20m ./...

demo: deps build
	./scripts/demo.sh

bench: deps build
	./scripts/bench.sh

fuzz: deps
	./scripts/fuzz.sh $(FUZZTIME)

clean:
	rm -rf bin zk2raft-demo
