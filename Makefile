# keepup: build, test, lint, demo. `make test` is what CI runs.
CARGO ?= cargo
PREFIX ?= /usr/local
BIN := target/release/keepup

.PHONY: build test lint fmt install demo bench clean

build:
	$(CARGO) build --release --locked
	@ls -l $(BIN) | awk '{print "keepup: " $$5 " bytes (release, stripped)"}'

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

test: lint
	$(CARGO) test --locked

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
