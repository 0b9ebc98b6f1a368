# tapline developer targets. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
GO    ?= go
TOOLS := $(GO) tool -modfile=deploy/tools/go.mod
# Executions per fuzz target inside `make test` (a few seconds each); raise
# them to hunt. Counts, not durations: Go 1.26's fuzz coordinator can fail a
# duration-bounded run with a spurious "context deadline exceeded" as the
# time runs out (golang/go#75804, fixed in Go 1.27).
FUZZ_DECODE ?= 300000x
FUZZ_SHAPE  ?= 300000x
FUZZ_READINGS ?= 200000x
FUZZ_TIME   ?= 300000x
FUZZ_RULES  ?= 100000x
FUZZ_KEY    ?= 200000x
FUZZ_TOPIC  ?= 100000x
FUZZ_GETRECORDS ?= 30000x

.PHONY: test-faults all test unit arm64 fuzz lint bench bench-lake bench-full screenshot demo local-stack stack-up stack-down deploy-check build-check image

all: test

## test: every test: lint, unit, golden and integration tests with -race,
## brief fuzzing, and the deployment checks
test: lint local-stack unit arm64 fuzz deploy-check

## local-stack: install the pinned servers the integration tests start:
## kinesalite (Kinesis), dynalite (DynamoDB) and DuckDB (Athena) from
## deploy/local/package-lock.json, versitygw (S3) and goaws (SNS) from
## deploy/tools/go.mod, built into .tools/bin, and the Lambda Runtime
## Interface Emulator for the command Lambda, Debian's Chromium for the
## dashboard's browser test and qemu-user for the arm64 tests. Tests
## start and stop them.
local-stack:
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	command -v qemu-aarch64 >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user >/dev/null; }
	npm ci --prefix deploy/local --no-audit --no-fund --loglevel=error
	$(GO) build -modfile=deploy/tools/go.mod -o .tools/bin/versitygw github.com/versity/versitygw/cmd/versitygw
	$(GO) build -modfile=deploy/tools/go.mod -o .tools/bin/goaws github.com/Admiral-Piett/goaws/app/cmd
	$(GO) build -modfile=deploy/tools/go.mod -o .tools/bin/aws-lambda-rie github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie

## stack-up: run the local stack on fixed ports for tapline by hand
## (state, pids and logs in .tapline-stack); stack-down stops it
stack-up: local-stack
	$(GO) run ./deploy/local/stackctl up

stack-down:
	$(GO) run ./deploy/local/stackctl down

unit:
	$(GO) test -race -count=1 -timeout 25m ./...

## arm64: the stack's tasks and Lambda run on Graviton, where the x86
## assembly gives way to other code (the table base64 decoder, the
## arm64 prefetch): those packages, and the tests that drive them, built
## for linux/arm64 and run under qemu-user
arm64: local-stack
	GOARCH=arm64 $(GO) vet ./pipeline/getrecords ./windows/internal/prefetch
	GOARCH=arm64 $(GO) test -count=1 -exec qemu-aarch64 ./pipeline/getrecords ./windows/... ./schemas
	GOARCH=arm64 $(GO) test -count=1 -exec qemu-aarch64 -run 'TestProcessBatchPrefetches' ./pipeline

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZ_DECODE) ./schemas
	$(GO) test -run '^$$' -fuzz '^FuzzShape$$' -fuzztime $(FUZZ_SHAPE) ./schemas
	$(GO) test -run '^$$' -fuzz '^FuzzReadings$$' -fuzztime $(FUZZ_READINGS) ./schemas
	$(GO) test -run '^$$' -fuzz '^FuzzRFC3339$$' -fuzztime $(FUZZ_TIME) ./schemas
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZ_RULES) ./windows/rules
	$(GO) test -run '^$$' -fuzz '^FuzzKey$$' -fuzztime $(FUZZ_KEY) ./sinks/layout
	$(GO) test -run '^$$' -fuzz '^FuzzCommandTopic$$' -fuzztime $(FUZZ_TOPIC) ./sinks/command
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZ_GETRECORDS) ./pipeline/getrecords

## build-check: the container's build step gives a static, reproducible,
## version-stamped binary with CA roots, and the image (FROM scratch)
## builds with podman, offline (installed from Debian if missing)
build-check:
	command -v podman >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman >/dev/null; }
	sh deploy/build-check.sh

## image: the container's build context in .tools/dist/image, for
## linux/arm64 (GOARCH=amd64 for x86 hosts); then docker build it
image:
	sh deploy/image.sh .tools/dist/image

## deploy-check: the CDK app (its own module, deploy/cdk; named packages,
## since node_modules holds the CLI's Go templates) is vetted, its
## assertion tests pass, and `cdk synth` (CLI pinned in
## deploy/cdk/package-lock.json) runs offline with the commander built for
## Lambda (linux/arm64)
CDK_ENV := JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1 CDK_DISABLE_VERSION_CHECK=1
deploy-check: build-check
	GOARCH=arm64 deploy/build.sh .tools/dist/commander/bootstrap ./cmd/commander
	GOARCH=arm64 sh deploy/image.sh .tools/dist/image
	cd deploy/cdk && $(GO) vet . ./taplinestack && $(GO) tool -modfile=../tools/go.mod staticcheck . ./taplinestack
	cd deploy/cdk && $(CDK_ENV) $(GO) test -count=1 . ./taplinestack
	npm ci --prefix deploy/cdk --no-audit --no-fund --loglevel=error
	rm -rf .tools/cdk.out
	cd deploy/cdk && $(CDK_ENV) ./node_modules/.bin/cdk synth --quiet --no-notices --no-version-reporting -o ../../.tools/cdk.out -c opsEmail=ops@example.com > /dev/null
	@echo "deploy-check: synthesized $$(ls .tools/cdk.out/*.template.json)"

## test-faults: the fault-injection suite with the issues' full durations
## (SNS down 2 minutes, 6 hours of backlog, a 10-minute soak, lease
## balancing ten times with 10 minutes watched each: about 2 hours); make
## test runs the short forms
test-faults: local-stack
	TAPLINE_FAULTS_LONG=1 $(GO) test -count=1 -v -timeout 150m -run 'TestFault' ./cmd/tapline | tee benchmarks/results/faults-long.txt

## lint: gofmt, go vet and staticcheck (pinned in deploy/tools/go.mod)
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(TOOLS) staticcheck ./...

## bench: the loop, decode, the naive baseline and DuckDB up to 100k devices,
## snapshots; then the throughput plot (about ten minutes)
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1s -timeout 60m ./schemas ./benchmarks | tee benchmarks/results/latest.txt
	$(GO) run ./benchmarks/plot -o benchmarks/results/scaling.png benchmarks/results/latest.txt

## screenshot: the dashboard's picture in the README, from the browser test
screenshot:
	TAPLINE_SCREENSHOT=$(CURDIR)/cmd/internal/dashboard/dashboard.png $(GO) test -count=1 -run TestDashboardInBrowser ./cmd/internal/demo

## bench-lake: a day of a 1,000-device fleet compacted; the one-device query before and after (DuckDB)
bench-lake:
	TAPLINE_BENCH_LAKE=1 $(GO) test -run '^$$' -bench BenchmarkLakeDay -benchtime 1x -cpu 1 -timeout 60m ./benchmarks | tee benchmarks/results/lake.txt

## bench-full: adds 1M devices and the 1M-device window close (needs ~8 GiB)
bench-full:
	TAPLINE_BENCH_FULL=1 $(GO) test -run '^$$' -bench . -benchtime 1s -timeout 90m ./schemas ./benchmarks | tee benchmarks/results/latest-full.txt
	$(GO) run ./benchmarks/plot -o benchmarks/results/scaling.png benchmarks/results/latest-full.txt

## demo: the newcomer's first command
demo:
	$(GO) run ./cmd/tapline demo
