# Maelstrom + SMFS: one entry point for building, testing and benchmarking.
#   make deps    install system packages (apt-get) and node modules (npm ci)
#   make build   BPF objects, the native addon, TypeScript
#   make test    deps + build, then every test; ends with "N passed, N failed"
#   make demo    the main job (see README.md)
#   make bench   benchmarks that print figures (never pass/fail on time; engine needs root)
#   make reproduce  the SMFS paper's figures 6-11 in the lab, --quick (root; out/reproduce-quick)
#   make fuzz    libFuzzer targets for the repair parser and decoder (FUZZ_SECONDS each)
#   make clean
# Quiet unless V=1.

.DELETE_ON_ERROR:
.SUFFIXES:
SHELL := /bin/bash

ifeq ($(V),1)
Q :=
msg := @true
else
Q := @
msg := @printf '  %-8s %s\n'
endif

# Debian packages the build, the tests and the lab use (checked one by one with dpkg-query).
APT_PACKAGES := clang llvm libbpf-dev libxdp-dev bpftool xdp-tools iproute2 util-linux \
	libxxhash-dev libclang-rt-14-dev pkg-config linux-libc-dev ethtool iputils-ping tcpdump \
	libsodium-dev libssl-dev libfuse3-dev fuse3 sqlite3 postmark fio git libisal-dev \
	fonts-dejavu-core

OUT        := out
BPF_OUT    := $(OUT)/bpf
BPF_SRC    := $(wildcard bpf/*.bpf.c)
BPF_OBJ    := $(patsubst bpf/%.bpf.c,$(BPF_OUT)/%.bpf.o,$(BPF_SRC))
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -Wall -Werror -I bpf -I /usr/include/$(shell gcc -dumpmachine)

NATIVE_SRC := $(shell find native -name '*.cc' -o -name '*.h' | grep -v fuzz) binding.gyp
ADDON      := build/Release/maelstrom.node
CONSTANTS_TS := src/native/constants.ts
TS_SRC     := $(shell find src test bench -name '*.ts') $(CONSTANTS_TS) tsconfig.json
TS_STAMP   := dist/.stamp

FUZZ_SECONDS ?= 20
FUZZ_OUT     := $(OUT)/fuzz
FUZZ_CFLAGS  := -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I native
FUZZ_TARGETS := $(FUZZ_OUT)/fuzz_repair_parser $(FUZZ_OUT)/fuzz_decoder $(FUZZ_OUT)/fuzz_envelope
FEC_SRC      := $(wildcard native/fec/*.cc) $(wildcard native/auth/*.cc)

.PHONY: all deps build test test-only demo bench reproduce fuzz clean

all: build

deps:
	$(Q)missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "  DEPS     apt-get install" $$missing; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	$(Q)if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then \
		echo "  DEPS     npm ci"; npm ci --ignore-scripts --no-audit --no-fund --loglevel=error; \
	fi

build: $(BPF_OBJ) $(ADDON) $(TS_STAMP)

$(BPF_OUT)/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.h)
	$(msg) BPF $@
	$(Q)mkdir -p $(BPF_OUT)
	$(Q)clang $(BPF_CFLAGS) -c $< -o $@

$(ADDON): $(NATIVE_SRC)
	$(msg) ADDON $@
	$(Q)mkdir -p $(OUT)
	$(Q)npx --no-install node-gyp rebuild --nodedir=/usr -j 2 >$(OUT)/node-gyp.log 2>&1 \
		|| { cat $(OUT)/node-gyp.log; exit 1; }
	$(Q)touch $@

# The facts C and C++ own, for TypeScript (rewritten only when the addon says otherwise).
$(CONSTANTS_TS): $(ADDON) scripts/gen-constants.mjs
	$(msg) GEN $@
	$(Q)node scripts/gen-constants.mjs
	$(Q)touch $@

$(TS_STAMP): $(TS_SRC)
	$(msg) TSC dist/
	$(Q)npx --no-install tsc -p tsconfig.json
	$(Q)chmod +x dist/src/cli/maelstrom.js dist/src/cli/smfs.js
	$(Q)touch $@

test: deps build
	$(Q)$(MAKE) --no-print-directory test-only

test-only:
	$(Q)node scripts/run-tests.mjs

demo: deps build
	$(Q)bash scripts/demo.sh

bench: deps build
	$(Q)node dist/src/cli/maelstrom.js bench codec
	$(Q)node dist/src/cli/maelstrom.js bench engine

# Every figure with fewer runs and shorter experiments; the full run is
# `node dist/src/cli/smfs.js reproduce --out docs/reproduction` (docs/reproduction.md).
reproduce: deps build
	$(Q)node dist/src/cli/smfs.js reproduce --quick --out $(OUT)/reproduce-quick

$(FUZZ_OUT)/fuzz_%: native/fuzz/fuzz_%.cc $(FEC_SRC) $(wildcard native/fec/*.h native/auth/*.h)
	$(msg) FUZZ $@
	$(Q)mkdir -p $(FUZZ_OUT)
	$(Q)clang++ $(FUZZ_CFLAGS) $< $(FEC_SRC) -lxxhash -lsodium -lcrypto -o $@

fuzz: deps $(FUZZ_TARGETS)
	$(Q)for t in $(FUZZ_TARGETS); do \
		name=$$(basename $$t); mkdir -p $(FUZZ_OUT)/corpus-$$name; \
		echo "  RUN      $$name for $(FUZZ_SECONDS)s"; \
		$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 \
			$(FUZZ_OUT)/corpus-$$name >$(FUZZ_OUT)/$$name.log 2>&1 \
			|| { tail -n 60 $(FUZZ_OUT)/$$name.log; exit 1; }; \
		grep -E 'stat::number_of_executed_units' $(FUZZ_OUT)/$$name.log; \
	done

clean:
	$(Q)rm -rf build $(OUT) dist
