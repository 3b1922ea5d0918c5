# Thin wrapper: the real build is meson + ninja, the real logic lives in scripts/.
#   make build   install missing packages, configure (once) and compile build/
#   make run     build, then start dlvmd on ./var (creates pv0.img and vg0 on first start)
#   make check   build, then unit tests (ASan+UBSan) and system tests; ends with "N passed, N failed"
#   make bench   build, then the benchmarks in bench/ (ratios against baselines)
#   make fuzz    the libFuzzer harnesses of tests/fuzz, FUZZ_SECONDS each (default 600)
#   make soak    shared VG under faults for SOAK_SECONDS (default 1800): tests/system/soak.py
#   make clean   remove build trees and benchmark output

BUILD := build
FUZZ_SECONDS ?= 600
SOAK_SECONDS ?= 1800

.PHONY: all deps build run check bench fuzz soak clean

all: build

deps:
	scripts/deps

build: deps
	[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD)
	ninja -C $(BUILD)

run: build
	scripts/run

check: build
	scripts/check

bench: build
	bench/run

fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz

soak: build
	DLVM_BUILD=$(CURDIR)/$(BUILD) /usr/bin/python3 tests/system/soak.py --seconds $(SOAK_SECONDS)

clean:
	rm -rf $(BUILD) build-asan build-fuzz bench/out
