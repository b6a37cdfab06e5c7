# keepup: build, test, lint, demo. `make test` is what CI runs.
CARGO ?= cargo
PREFIX ?= /usr/local
BIN := target/release/keepup

MUSL := x86_64-unknown-linux-musl
STATIC := target/keepup-static

.PHONY: build static static-arm64 npm-pack test soak fuzz lint fmt install demo bench clean

build:
	$(CARGO) build --release --locked
	@ls -l $(BIN) | awk '{print "keepup: " $$5 " bytes (release, stripped)"}'

# The binary the README, the npm package and the container ship: static,
# musl, not position-independent, no runtime dependency at all. Where the
# rust-src component can be had, std itself is rebuilt for size with panics
# that abort at once (build-std; RUSTC_BOOTSTRAP lets the stable compiler
# take those two unstable flags): half the size, and the resident set of an
# idle keepup under 512 KB. Elsewhere the plain musl build is used.
STATIC_FLAGS := -C relocation-model=static
static:
	@rustup target list --installed 2>/dev/null | grep -qx $(MUSL) || rustup target add $(MUSL) >/dev/null 2>&1 || \
	  { echo "make static: the Rust target $(MUSL) is not installed and 'rustup target add $(MUSL)' failed" >&2; exit 1; }
	@set -e; \
	if { rustup component list --installed 2>/dev/null | grep -q '^rust-src' || rustup component add rust-src >/dev/null 2>&1; } && \
	   RUSTC_BOOTSTRAP=1 RUSTFLAGS="$(STATIC_FLAGS) -Zunstable-options -Cpanic=immediate-abort" \
	   $(CARGO) build -q --release --target $(MUSL) -Z build-std=std,panic_abort --target-dir target/static-min; then \
	  cp target/static-min/$(MUSL)/release/keepup $(STATIC); how="std rebuilt for size"; \
	else \
	  echo "make static: build-std unavailable here; plain musl build" >&2; \
	  RUSTFLAGS="$(STATIC_FLAGS)" $(CARGO) build -q --release --locked --target $(MUSL) --target-dir target/static-plain; \
	  cp target/static-plain/$(MUSL)/release/keepup $(STATIC); how="plain musl build"; \
	fi; \
	ls -l $(STATIC) | awk -v how="$$how" '{print "keepup (static, musl, " how "): " $$5 " bytes -> $(STATIC)"}'

# The arm64 binary (Graviton servers, arm64 containers on Apple machines):
# static musl, cross-linked with Debian's gcc-aarch64-linux-gnu; tested
# under qemu-user (tests/arm64.rs).
ARM64 := aarch64-unknown-linux-musl
STATIC_ARM64 := target/keepup-static-arm64
static-arm64:
	@rustup target list --installed 2>/dev/null | grep -qx $(ARM64) || rustup target add $(ARM64) >/dev/null 2>&1 || \
	  { echo "make static-arm64: the Rust target $(ARM64) is not installed and 'rustup target add $(ARM64)' failed" >&2; exit 1; }
	@command -v aarch64-linux-gnu-gcc >/dev/null || { echo "make static-arm64: needs aarch64-linux-gnu-gcc (Debian: gcc-aarch64-linux-gnu)" >&2; exit 1; }
	@CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc RUSTFLAGS="$(STATIC_FLAGS)" \
	  $(CARGO) build -q --release --locked --target $(ARM64) --target-dir target/arm64
	@cp target/arm64/$(ARM64)/release/keepup $(STATIC_ARM64)
	@ls -l $(STATIC_ARM64) | awk '{print "keepup (static, musl, arm64): " $$5 " bytes -> $(STATIC_ARM64)"}'

# Tarballs for npm in target/npm: `keepup-cli`, `keepup-cli-linux-x64` and,
# where the arm64 build works, `keepup-cli-linux-arm64`. Falls
# back to the glibc build (with a warning) where the musl target is missing.
npm-pack:
	@set -e; \
	if $(MAKE) -s static >/dev/null; then bin=$(STATIC); \
	else echo "npm-pack: no static build here; packing the glibc build" >&2; $(CARGO) build --release --locked -q; bin=$(BIN); fi; \
	version=$$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1); \
	rm -rf target/npm; mkdir -p target/npm/stage; \
	cp -R npm/keepup-cli npm/keepup-cli-linux-x64 npm/keepup-cli-linux-arm64 target/npm/stage/; \
	install -D -m 0755 $$bin target/npm/stage/keepup-cli-linux-x64/bin/keepup; \
	pkgs="keepup-cli keepup-cli-linux-x64"; \
	if $(MAKE) -s static-arm64 >/dev/null; then \
	  install -D -m 0755 $(STATIC_ARM64) target/npm/stage/keepup-cli-linux-arm64/bin/keepup; pkgs="$$pkgs keepup-cli-linux-arm64"; \
	else echo "npm-pack: no arm64 build here; its package is left out" >&2; fi; \
	for p in $$pkgs; do \
	  node npm/stamp-version.js "target/npm/stage/$$p/package.json" "$$version"; \
	  (cd target/npm/stage/$$p && npm pack --silent --pack-destination ../.. >/dev/null); \
	done; \
	rm -rf target/npm/stage; ls -l target/npm

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

# The npm round trip (tests/npm.rs) installs the tarballs npm-pack makes.
test: lint npm-pack
	$(CARGO) test --locked

# Ten minutes over a child that writes bursts and crashes at random
# (KEEPUP_SOAK_SECS to change): lines, descriptors, RSS, zombies, leftovers.
soak:
	$(CARGO) test --release --locked --test soak -- --ignored --nocapture

# Each fuzz target for FUZZ_SECS (60) seconds; see fuzz/README.md.
FUZZ_SECS ?= 60
fuzz:
	./fuzz/run $(FUZZ_SECS)

fmt:
	$(CARGO) fmt

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/keepup

# A real example: a server that crashes after a while, restarted with
# backoff until keepup gives up, with a merged timestamped log.
demo: build
	./examples/demo.sh $(BIN)

bench: build
	./bench/run

clean:
	$(CARGO) clean
