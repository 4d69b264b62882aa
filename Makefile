# kisvault — build, test, demo. Every target installs the system packages it needs first,
# so a fresh Debian machine needs nothing but Swift and this file.

PREFIX ?= /usr/local
SWIFT  ?= swift
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the build links against (libsodium, SQLite) and the tools the tests use
# (curl, setpriv from util-linux, script from bsdutils, pkill from procps, and the
# PostgreSQL server the team-vault tests start a throwaway cluster of, prometheus (the
# server and promtool the metrics tests run), and systemd for
# systemd-analyze, which checks the unit files).
DEB_PACKAGES := libsodium-dev libsqlite3-dev pkg-config curl util-linux bsdutils procps postgresql openssl systemd prometheus

.PHONY: deps build test install man demo bench fuzz deb clean

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

# The binary, its man page, and shell completion (account names and tags completed from
# the vault without a passphrase) for each of bash, zsh and fish that is installed, where
# that shell looks under PREFIX.
install: man
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 .build-static/release/kisvault $(DESTDIR)$(PREFIX)/bin/kisvault
	install -m 0644 .build-static/kisvault.1 $(DESTDIR)$(PREFIX)/share/man/man1/kisvault.1
	@if command -v bash >/dev/null; then \
		install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions; \
		.build-static/release/kisvault --generate-completion-script bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/kisvault; fi
	@if command -v zsh >/dev/null; then \
		install -d $(DESTDIR)$(PREFIX)/share/zsh/site-functions; \
		.build-static/release/kisvault --generate-completion-script zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_kisvault; fi
	@if command -v fish >/dev/null; then \
		install -d $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d; \
		.build-static/release/kisvault --generate-completion-script fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/kisvault.fish; fi

# The man page, rendered from the command tree the binary dumps (scripts/man.py; the
# generate-manual plugin would build the whole package a second time, in release, for it).
man: deps
	$(SWIFT) build -c release $(STATIC) --product kisvault
	python3 scripts/man.py .build-static/release/kisvault > .build-static/kisvault.1

demo: deps
	$(SWIFT) build --product kisvault
	$(SWIFT) build --product kis-mock
	bash scripts/demo.sh

bench: deps
	bash scripts/bench.sh

# The Debian package (scripts/make-deb.sh): the static release binary, man page,
# completions, systemd units and alerting rules, built with dpkg-deb and checked with
# lintian. Not part of `make test`: it needs the release build (docs/OPERATIONS.md).
deb: deps
	$(SUDO) apt-get install -y -qq lintian >/dev/null 2>&1 || true
	bash scripts/make-deb.sh

# libFuzzer on the parsers of untrusted input, 10 minutes per target (FUZZ_SECONDS);
# the corpus it keeps is in Tests/Fuzz/corpus and `make test` replays it.
fuzz: deps
	bash scripts/fuzz.sh

clean:
	rm -rf .build
