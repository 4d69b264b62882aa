# kisvault — build, test, demo. Every target installs the system packages it needs first,
# so a fresh Debian machine needs nothing but Swift and this file.

PREFIX ?= /usr/local
SWIFT  ?= swift
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the build links against (libsodium, SQLite) and the tools the tests use
# (curl, setpriv from util-linux, script from bsdutils, pkill from procps, and the
# PostgreSQL server the team-vault tests start a throwaway cluster of).
DEB_PACKAGES := libsodium-dev libsqlite3-dev pkg-config curl util-linux bsdutils procps postgresql

.PHONY: deps build test install demo bench fuzz clean

deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build

# Tests run one at a time (71 s here): many of them start kisvault processes against an
# in-process kis-mock, and run all at once on 2 cores they starved the mocks into timeouts
# that had nothing to do with the code under test. They run beside a throwaway PostgreSQL
# cluster (scripts/with-postgres.sh: a temporary directory, a free loopback port, stopped
# afterwards whatever happens), and the team-vault tests must not skip.
test: deps
	$(SWIFT) build --build-tests
	KISVAULT_REQUIRE_PG=1 KISVAULT_REQUIRE_PYPI=1 bash scripts/with-postgres.sh $(SWIFT) test --skip-build --no-parallel

# A statically linked Swift runtime: 5 ms less process start-up, which is most of what a
# `kisvault approval get` through the agent costs (docs/BENCHMARKS.md).
STATIC := --static-swift-stdlib --scratch-path .build-static

install: deps
	$(SWIFT) build -c release $(STATIC) --product kisvault
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 .build-static/release/kisvault $(DESTDIR)$(PREFIX)/bin/kisvault

demo: deps
	$(SWIFT) build --product kisvault
	$(SWIFT) build --product kis-mock
	bash scripts/demo.sh

bench: deps
	bash scripts/bench.sh

# libFuzzer on the parsers of untrusted input, 10 minutes per target (FUZZ_SECONDS);
# the corpus it keeps is in Tests/Fuzz/corpus and `make test` replays it.
fuzz: deps
	bash scripts/fuzz.sh

clean:
	rm -rf .build
