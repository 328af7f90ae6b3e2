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

.PHONY: build deps check-tools test test-deps test-short race fuzz bench demo install clean vet arm64-check env

build: $(BIN)

$(BIN): $(DEPS_STAMP) $(GO_SOURCES)
	@mkdir -p $(dir $@)
	$(GO) build -trimpath -o $@ ./daemon/cmd/inspectd

deps: $(DEPS_STAMP)

# `eval "$$(make -s env)"` sets up a shell for plain `go test ./pkg/...`.
env:
	@echo 'export CGO_ENABLED=1 CGO_CFLAGS="$(CGO_CFLAGS)" INSPECTD_SHARE="$(INSPECTD_SHARE)" PATH="$$PATH:/usr/sbin"'
	@echo 'export CGO_LDFLAGS='"'"'$(CGO_LDFLAGS)'"'"

check-tools:
	@command -v $(GO) >/dev/null || { echo "make deps: 'go' not found: install Go 1.26 (https://go.dev/dl) and put it on PATH"; exit 1; }
	@command -v gcc >/dev/null || { echo "make deps: 'gcc' not found (cgo needs it): apt-get install gcc"; exit 1; }
	@command -v tar >/dev/null || { echo "make deps: 'tar' not found: apt-get install tar"; exit 1; }
	@case "$(TFLITE_ARCH)" in unsupported-*) echo "make deps: no TensorFlow Lite library for machine type '$(UNAME_M)' (x86_64 and aarch64 are supported)"; exit 1;; esac

$(BUILD)/npm/$(TFLITE_TGZ):
	@command -v npm >/dev/null || { echo "make deps: 'npm' not found (it fetches the TensorFlow Lite C library): apt-get install npm"; exit 1; }
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

# mosquitto is the real MQTT broker the integration tests start on loopback.
test-deps: deps
	@command -v mosquitto >/dev/null || { \
	  echo "make test: installing mosquitto (Debian package) for the MQTT integration tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq mosquitto mosquitto-clients >/dev/null; }
	@command -v mosquitto >/dev/null || PATH=$$PATH:/usr/sbin command -v mosquitto >/dev/null || { echo "make test: mosquitto is missing: apt-get install mosquitto"; exit 1; }

# Packages that start goroutines run under the race detector too.
RACE_PKGS := ./daemon/... ./capture/... ./model/...

test: test-deps
	$(GO) vet ./...
	PATH=$$PATH:/usr/sbin $(GO) test -count=1 -timeout 20m ./...
	PATH=$$PATH:/usr/sbin $(GO) test -count=1 -race -short -timeout 20m $(RACE_PKGS)
	$(MAKE) --no-print-directory test-v4l2
	$(MAKE) --no-print-directory arm64-check

# The same code path on linux/arm64: cross-compile the whole binary (cgo
# included) against the arm64 TensorFlow Lite library of the same npm
# package, with Debian's cross compiler.
ARM64_LIB := $(BUILD)/arm64/lib/inspectd
arm64-check: $(DEPS_STAMP)
	@command -v aarch64-linux-gnu-gcc >/dev/null || { \
	  echo "make arm64-check: installing Debian's arm64 cross compiler (gcc-aarch64-linux-gnu)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null; }
	@mkdir -p $(ARM64_LIB)
	@[ -f $(ARM64_LIB)/libtensorflowlite_c.so ] || tar -xzOf $(BUILD)/npm/$(TFLITE_TGZ) package/cc_deps/linux_arm64/libtensorflowlite_c.so > $(ARM64_LIB)/libtensorflowlite_c.so
	GOARCH=arm64 CC=aarch64-linux-gnu-gcc CGO_LDFLAGS="-L$(ARM64_LIB) -Wl,-rpath,\$$ORIGIN/../lib/inspectd" \
	  $(GO) build -trimpath -o $(BUILD)/arm64/bin/inspectd ./daemon/cmd/inspectd
	GOARCH=arm64 CC=aarch64-linux-gnu-gcc CGO_LDFLAGS="-L$(ARM64_LIB)" $(GO) vet ./...
	@file $(BUILD)/arm64/bin/inspectd 2>/dev/null | grep -q aarch64 || [ ! -x /usr/bin/file ] || { echo "make arm64-check: not an arm64 binary"; exit 1; }
	@echo "make arm64-check: linux/arm64 binary built in $(BUILD)/arm64/bin"

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

vet: deps
	$(GO) vet ./...

DEMO_ARGS ?=
demo: $(BIN)
	$(BIN) demo --state $(BUILD)/demo $(DEMO_ARGS)

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/inspectd $(DESTDIR)$(PREFIX)/share/inspectd \
	  $(DESTDIR)/etc/inspectd $(DESTDIR)/lib/systemd/system
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/inspectd
	install -m 0644 $(LIBDIR)/libtensorflowlite_c.so $(DESTDIR)$(PREFIX)/lib/inspectd/
	install -m 0644 $(SHARE)/$(BACKBONE) $(SHARE)/mobilenet_labels.txt $(DESTDIR)$(PREFIX)/share/inspectd/
	sed 's|@PREFIX@|$(PREFIX)|g' systemd/inspectd.service > $(DESTDIR)/lib/systemd/system/inspectd.service
	[ -e $(DESTDIR)/etc/inspectd/inspectd.yaml ] || install -m 0640 systemd/inspectd.example.yaml $(DESTDIR)/etc/inspectd/inspectd.yaml

clean:
	rm -rf $(BUILD)/bin

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
	  echo "make test-v4l2: installing qemu-system-x86, busybox-static, cpio, kmod and v4l-utils (Debian)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
	    qemu-system-x86 busybox-static cpio kmod v4l-utils xz-utils >/dev/null || exit 1; \
	fi; \
	$(GO) vet -tags vivid ./capture/vivid && CGO_ENABLED=0 $(GO) test -c -tags vivid -o $(VIVID_DIR)/vivid.test ./capture/vivid || exit 1; \
	PATH=$$PATH:/usr/sbin:/sbin VIVID_START=$$start VIVID_DIR=$(VIVID_DIR) KERNEL_ABI=$(VIVID_KERNEL_ABI) KERNEL_VERSION=$(VIVID_KERNEL_VERSION) \
	  KERNEL_SHA256=$(VIVID_KERNEL_SHA256) INSPECTD_BIN=$(BIN) INSPECTD_LIB=$(LIBDIR) INSPECTD_SHARE=$(SHARE) \
	  VIVID_TEST=$(VIVID_DIR)/vivid.test capture/vivid/vm.sh
# ---- end of test-v4l2 -------------------------------------------------------
