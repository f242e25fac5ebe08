# pxelab's tasks. The README's two commands are `make deps demo` and `make deps test`.
CARGO ?= cargo
FIXTURES := fixtures/out
PXELAB := target/release/pxelab

.PHONY: all deps build fixtures test e2e lint demo bench fuzz fuzz-smoke vendor-check man completions install uninstall deb clean

FUZZ_TARGETS := tftp_path iso_index netxml menu dhcp
# Seconds per target: make fuzz FUZZ_SECONDS=600
FUZZ_SECONDS ?= 120
# Stable toolchain: cargo fuzz passes -Zsanitizer=address.
FUZZ := RUSTC_BOOTSTRAP=1 $(CARGO) fuzz

all: build

## deps: install the system packages (Debian 12; libvirt/QEMU from bookworm-backports). Needs root.
deps:
	bash scripts/deps.sh

## build: the pxelab binary (target/release/pxelab).
build:
	$(CARGO) build --release --locked

# The binary that completions and install use: the release build, unless
# PXELAB names another (the tests pass their debug build).
PXELAB_BUILD := $(if $(filter target/release/pxelab,$(PXELAB)),build,)

## man: the man pages, pxelab(1) and one per verb, generated from the clap definitions into target/man.
MAN ?= target/man
man:
	rm -rf $(MAN)
	$(CARGO) run --quiet --locked --example mangen -- $(MAN)

## completions: bash, zsh and fish completions into target/completions.
COMPLETIONS ?= target/completions
completions: $(PXELAB_BUILD)
	mkdir -p $(COMPLETIONS)
	$(PXELAB) completions bash >$(COMPLETIONS)/pxelab.bash
	$(PXELAB) completions zsh >$(COMPLETIONS)/_pxelab
	$(PXELAB) completions fish >$(COMPLETIONS)/pxelab.fish

## install: the binary, man pages and completions under PREFIX (default /usr/local; DESTDIR for staging).
## uninstall: removes exactly those files.
PREFIX ?= /usr/local
BINDIR = $(DESTDIR)$(PREFIX)/bin
MANDIR = $(DESTDIR)$(PREFIX)/share/man/man1
BASHDIR = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHDIR = $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions
FISHDIR = $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
install: man completions
	install -D -m 755 $(PXELAB) $(BINDIR)/pxelab
	install -d $(MANDIR)
	install -m 644 $(MAN)/*.1 $(MANDIR)/
	install -D -m 644 $(COMPLETIONS)/pxelab.bash $(BASHDIR)/pxelab
	install -D -m 644 $(COMPLETIONS)/_pxelab $(ZSHDIR)/_pxelab
	install -D -m 644 $(COMPLETIONS)/pxelab.fish $(FISHDIR)/pxelab.fish

uninstall: man
	rm -f $(BINDIR)/pxelab $(BASHDIR)/pxelab $(ZSHDIR)/_pxelab $(FISHDIR)/pxelab.fish
	cd $(MAN) && for page in *.1; do rm -f "$(MANDIR)/$$page"; done

## deb: a Debian package in target/debian/ (cargo-deb): the release binary stripped, man pages, completions, README.
deb: man completions
	$(CARGO) deb --locked --strip

## fixtures: the test ISOs, built from Debian packages into fixtures/out (git-ignored); the
## real installers' (fai-cd.iso, debian-live.iso) by FAI's and live-build's own tools, cached
## under FIXTURE_CACHE (outside the clone: a runner that keeps it rebuilds nothing).
FIXTURE_CACHE ?= /var/cache/pxelab-fixtures
fixtures: $(FIXTURES)/.stamp $(FIXTURES)/.real.stamp

$(FIXTURES)/.stamp: fixtures/lib.sh fixtures/build.sh fixtures/arm64.sh fixtures/init.sh fixtures/installed.sh fixtures/udhcpc.sh
	bash fixtures/build.sh $(FIXTURES)
	bash fixtures/arm64.sh $(FIXTURES)
	touch $@

$(FIXTURES)/.real.stamp: fixtures/fai.sh fixtures/live.sh
	bash fixtures/live.sh $(FIXTURES) $(FIXTURE_CACHE)
	bash fixtures/fai.sh $(FIXTURES) $(FIXTURE_CACHE)
	touch $@

## test: formatting and clippy (a warning fails), the vendor check, every test (unit and
## integration) against the fixtures with libvirtd running, then a short smoke run of each fuzz target.
test: lint fixtures vendor-check
	bash scripts/with-libvirtd.sh $(CARGO) test --locked --no-fail-fast
	$(MAKE) fuzz-smoke

## e2e: the long end-to-end installs (the whole FAI install to the installed system's login
## prompt, about 10 minutes under TCG), which `make test` runs only to a marker.
e2e: fixtures
	bash scripts/with-libvirtd.sh $(CARGO) test --locked --test real -- --ignored

## lint: `cargo fmt --check`, `cargo clippy --all-targets -- -D warnings`, and the structure
## rules of src/ (scripts/structure.py: files, functions, import circles).
lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --locked -- -D warnings
	python3 scripts/structure.py src

## vendor-check: vendor/'s patched crates are exactly published source + vendor/patches (vendor/README.md).
vendor-check:
	bash scripts/vendor-check.sh

## fuzz: each fuzz target for FUZZ_SECONDS (libFuzzer, AddressSanitizer); crashes land in fuzz/artifacts/.
fuzz: fixtures
	bash fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

## fuzz-smoke: each fuzz target for 10 s, as CI runs them.
fuzz-smoke: fixtures
	bash fuzz/run.sh 10 $(FUZZ_TARGETS)

## demo: the main job on the demo ISO (fixtures/out/centos-busybox.iso).
demo: build fixtures
	bash scripts/with-libvirtd.sh bash scripts/demo.sh $(PXELAB) $(FIXTURES)/centos-busybox.iso

## bench: pxelab's servers against tftpd-hpa, atftpd, dnsmasq, vsftpd and nginx on loopback,
## then `pxelab up` against the manual method (tftpd-hpa + vsftpd + virsh), proxy DHCP against the bootp patch, and the kernel and
## initrd into a TCG guest over TFTP and over HTTP (and over iPXE's HTTP from pxelab and from nginx), and the FAI CD's whole install (about 35
## minutes for its 3 runs), on isolated networks (root, libvirtd).
bench: build fixtures
	bash bench/servers.sh
	bash scripts/with-libvirtd.sh python3 bench/limit.py 3
	bash scripts/with-libvirtd.sh python3 bench/guest_transfer.py
	bash scripts/with-libvirtd.sh python3 bench/ipxe_http.py 6
	bash scripts/with-libvirtd.sh python3 bench/savings.py
	BENCH_STP=off bash scripts/with-libvirtd.sh python3 bench/proxy.py 3
	bash scripts/with-libvirtd.sh bash bench/firmware.sh
	python3 bench/boot_order.py 3
	python3 bench/ovmf_phases.py 3
	bash scripts/with-libvirtd.sh bash bench/installed.sh
	bash scripts/with-libvirtd.sh python3 bench/labs.py 3
	bash scripts/with-libvirtd.sh python3 bench/fai_install.py 3

clean:
	$(CARGO) clean
	rm -rf $(FIXTURES)
