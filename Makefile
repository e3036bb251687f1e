# The two commands the README starts with are `make run` and `make test`; everything else is a helper.
# Each target installs what it needs (Debian packages via apt-get, run as root on a fresh machine).

SHELL := /bin/bash
CARGO ?= cargo
# Debian packages the build and the tests need. libtpms-dev: the TPM engine; swtpm + tpm2-tools: the
# reference peer and the real client the integration tests drive; openssl: the tests' throwaway EK CA.
# qemu-system-x86: the real devices (virtio-blk, fw_cfg, pflash_cfi01) svsm-qtest drives through qtest, and
# with ovmf the firmware that measures a boot into the vTPM; python3-jwcrypto: the independent JWE
# implementation the key-release tests check against; etcd-server + etcd-client: the ledger service's backing
# cluster in tests (etcd, etcdctl); protobuf-compiler + libprotobuf-dev: protoc and the well-known .proto files
# the etcd-client crate's build script compiles; sbsigntool: sbvarsign/sbsiglist, the real signers of the
# Secure Boot variable updates svsm-uefi-auth's tests verify.
APT_PACKAGES := pkg-config libtpms-dev swtpm swtpm-tools tpm2-tools openssl qemu-system-x86 ovmf python3-jwcrypto \
	etcd-server etcd-client protobuf-compiler libprotobuf-dev sbsigntool
# PyPI packages the tests need (not in Debian bookworm). virt-firmware: virt-fw-vars, the real peer the OVMF
# varstore import/export tests compare against (JSON and .fd, both directions).
PIP_PACKAGES := virt-firmware
FUZZ_SECONDS ?= 60
STATE_DIR ?= state

.PHONY: run test deps check lint doc no-std unit fuzz fuzz-list bench clean

## Install the Debian and PyPI packages the build and tests need (skips what is already installed).
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@for p in $(PIP_PACKAGES); do \
	  python3 -m pip show -q $$p >/dev/null 2>&1 && continue; echo "installing (pip): $$p"; \
	  python3 -m pip install -q $$p || python3 -m pip install -q --break-system-packages $$p || exit 1; \
	done

## The main job: the host runtime serving a vTPM on a local encrypted store (state in ./$(STATE_DIR)).
run: deps
	$(CARGO) run --release --locked -p svsm-host -- serve --state-dir $(STATE_DIR)

## Everything CI checks: formatting, lints, docs, the no_std build, and the test suite.
test: deps lint doc no-std unit

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets --all-features -- -D warnings

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --locked --workspace --no-deps --all-features

## The core crates must build and link with no std at all (see tools/no-std-check/Cargo.toml).
## It must also hold no test doubles (SimulatedRmp/SimulatedVcpus, the SNP/vTPM doubles, TpmDouble): their
## symbols in the staticlib mean a `doubles`/`test-utils` feature leaked into the kernel feature set.
NO_STD_LIB = $${CARGO_TARGET_DIR:-tools/no-std-check/target}/debug/libno_std_check.a
no-std:
	$(CARGO) build --locked --manifest-path tools/no-std-check/Cargo.toml
	@test -s $(NO_STD_LIB)
	@if nm -C $(NO_STD_LIB) 2>/dev/null | grep -E -m 5 'svsm_protocol::(model|doubles)::|svsm_vtpm::double::'; then \
		echo "error: test doubles are compiled into the no_std kernel build"; exit 1; fi

unit:
	$(CARGO) test --locked --workspace --all-features

## Run every fuzz target (each crate keeps its own in crates/<crate>/fuzz) for FUZZ_SECONDS each.
## Needs the nightly toolchain (installed on these machines); installs cargo-fuzz if missing.
FUZZ_DIRS := $(wildcard crates/*/fuzz)
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install --locked cargo-fuzz
	@for d in $(FUZZ_DIRS); do \
	  for t in $$(cd $$d && cargo +nightly fuzz list); do \
	    echo "== $$d: $$t for $(FUZZ_SECONDS)s"; \
	    (cd $$d && cargo +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=4096) || exit 1; \
	  done; \
	done

fuzz-list:
	@for d in $(FUZZ_DIRS); do (cd $$d && cargo +nightly fuzz list | sed "s|^|$$d: |"); done

## Run the benchmarks and write BENCHMARKS.md fragments to target/bench-results.md.
bench: deps
	rm -f target/bench-results.md
	BENCH_OUT=$(CURDIR)/target/bench-results.md $(CARGO) bench --locked --workspace
	@echo "results: target/bench-results.md"

clean:
	$(CARGO) clean
