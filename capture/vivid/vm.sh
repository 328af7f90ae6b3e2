#!/usr/bin/env bash
# Boots Debian's kernel in qemu with an initramfs holding inspectd and the
# tests of capture/vivid, loads the kernel's virtual video test driver
# (vivid) there, runs the tests against it and reads the result back from
# the serial console. `make test-v4l2` calls it with everything built;
# see README.md ("The camera path against a real V4L2 driver").
#
# Environment (the Makefile sets all but the last three):
#   VIVID_DIR        work folder (downloads, the initramfs, console.log)
#   KERNEL_ABI       Debian kernel ABI, e.g. 6.1.0-57 (package linux-image-ABI-amd64)
#   KERNEL_VERSION   that package's version, e.g. 6.1.192-3
#   KERNEL_SHA256    sha256 of its .deb
#   INSPECTD_BIN     the inspectd binary; its TFLite library and backbone are
#   INSPECTD_LIB     found in these two folders
#   INSPECTD_SHARE
#   VIVID_TEST       the test binary (go test -c -tags vivid ./capture/vivid)
#   VIVID_RUN        optional: run only the tests matching this regexp
#   VIVID_RATE_SECONDS optional: length of the capture rate measurement (5)
#   VIVID_TIMEOUT    optional: seconds before the VM is stopped (600)
set -euo pipefail

say() { echo "make test-v4l2: $*"; }
since() { awk -v a="$(date +%s.%N)" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }
fail() { say "FAILED: $*" >&2; exit 1; }

for v in VIVID_DIR KERNEL_ABI KERNEL_VERSION KERNEL_SHA256 INSPECTD_BIN INSPECTD_LIB INSPECTD_SHARE VIVID_TEST; do
	[ -n "${!v:-}" ] || fail "$v is not set (run it through make test-v4l2)"
done
here=$(cd "$(dirname "$0")" && pwd)
VIVID_DIR=$(mkdir -p "$VIVID_DIR" && cd "$VIVID_DIR" && pwd)
start=${VIVID_START:-$(date +%s.%N)}
kver="$KERNEL_ABI-amd64"
pkg="linux-image-$kver"
deb="$VIVID_DIR/${pkg}_${KERNEL_VERSION}_amd64.deb"
kdir="$VIVID_DIR/kernel-$KERNEL_VERSION"

# 1. The kernel package, pinned by version and checksum.
if [ ! -f "$kdir/.done" ]; then
	if [ ! -f "$deb" ] || ! echo "$KERNEL_SHA256  $deb" | sha256sum -c --status; then
		rm -f "$deb"
		say "downloading $pkg=$KERNEL_VERSION (Debian)"
		# apt-get warns that root downloads unsandboxed into a folder its
		# _apt user cannot write: harmless here.
		download() { (cd "$VIVID_DIR" && apt-get -o DPkg::Lock::Timeout=600 download -q "$pkg=$KERNEL_VERSION" 2>&1) >"$VIVID_DIR/download.log"; }
		if ! download; then
			apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null 2>&1 || true
			download || {
				grep -v '^W: Download is performed unsandboxed' "$VIVID_DIR/download.log" >&2 || true
				fail "could not download $pkg=$KERNEL_VERSION; if Debian no longer serves that version, set VIVID_KERNEL_ABI, VIVID_KERNEL_VERSION and VIVID_KERNEL_SHA256 in the Makefile to the current linux-image-amd64 dependency (apt-cache show linux-image-amd64)"
			}
		fi
		[ -f "$deb" ] || fail "apt-get download left no $deb"
		got=$(sha256sum "$deb" | cut -d' ' -f1)
		if [ "$got" != "$KERNEL_SHA256" ]; then
			rm -f "$deb"
			fail "checksum mismatch for $(basename "$deb"): expected sha256 $KERNEL_SHA256, got $got; removed it"
		fi
	fi
	rm -rf "$kdir" && mkdir -p "$kdir"
	# Only the kernel and the media drivers: the package holds 400 MB of modules.
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$kdir" "./boot/vmlinuz-$kver" \
		"./lib/modules/$kver/kernel/drivers/media" "./lib/modules/$kver/modules.order" \
		"./lib/modules/$kver/modules.builtin" "./lib/modules/$kver/modules.builtin.modinfo"
	/sbin/depmod -b "$kdir" "$kver" || /usr/sbin/depmod -b "$kdir" "$kver"
	# The uncompressed kernel boots straight through its PVH entry point:
	# without KVM, the BIOS and the kernel's own xz decompression take
	# 15-20 s of the boot.
	off=$(set +o pipefail; LC_ALL=C grep -aobUP '\xfd7zXZ\x00' "$kdir/boot/vmlinuz-$kver" | head -1 | cut -d: -f1)
	# xz stops after the kernel's stream and tail's SIGPIPE is no error.
	if [ -n "$off" ] && (set +o pipefail; tail -c +$((off + 1)) "$kdir/boot/vmlinuz-$kver" |
		xz -dc --single-stream >"$kdir/boot/vmlinux-$kver" 2>/dev/null) &&
		[ "$(head -c 4 "$kdir/boot/vmlinux-$kver" | tail -c 3)" = ELF ]; then
		:
	else
		rm -f "$kdir/boot/vmlinux-$kver"
	fi
	touch "$kdir/.done"
fi

# 2. The initramfs: busybox, vivid and the modules it needs, inspectd with
# its library and backbone, v4l2-ctl, the tests, and every shared library
# that ldd names for them.
root="$VIVID_DIR/root"
rm -rf "$root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,usr/local/bin,usr/local/lib/inspectd,usr/local/share/inspectd}
install -m 0755 "$here/init" "$root/init"
busybox=$(command -v busybox) || fail "busybox is missing (apt-get -o DPkg::Lock::Timeout=600 install busybox-static)"
cp "$busybox" "$root/bin/busybox"
cp "$INSPECTD_BIN" "$root/usr/local/bin/inspectd"
cp "$INSPECTD_LIB"/libtensorflowlite_c.so "$root/usr/local/lib/inspectd/"
cp "$INSPECTD_SHARE"/* "$root/usr/local/share/inspectd/"
cp "$(command -v v4l2-ctl)" "$root/usr/local/bin/v4l2-ctl"
cp "$VIVID_TEST" "$root/vivid.test"
mods="$kdir/lib/modules/$kver"
vivid_dep=$(grep '/vivid/vivid.ko:' "$mods/modules.dep") || fail "vivid.ko is not in $pkg"
for m in ${vivid_dep%%:*} ${vivid_dep#*:}; do
	mkdir -p "$root/lib/modules/$kver/$(dirname "$m")"
	cp "$mods/$m" "$root/lib/modules/$kver/$m"
done
cp "$mods"/modules.{order,builtin,builtin.modinfo} "$root/lib/modules/$kver/"
/sbin/depmod -b "$root" "$kver" 2>/dev/null || /usr/sbin/depmod -b "$root" "$kver"
for bin in "$root/bin/busybox" "$root/usr/local/bin/inspectd" "$root/usr/local/lib/inspectd/libtensorflowlite_c.so" \
	"$root/usr/local/bin/v4l2-ctl" "$root/vivid.test"; do
	# "name => /path (addr)" and "/lib64/ld-linux-x86-64.so.2 (addr)"; the
	# TFLite library is already in place (found through the rpath).
	{ ldd "$bin" 2>/dev/null || true; } | awk '/libtensorflowlite_c/ {next} /=> \// {print $3} /^\t\// {print $1}'
done | sort -u | while read -r lib; do
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done
initrd="$VIVID_DIR/initrd.cpio"
(cd "$root" && find . | cpio -o -H newc --quiet >"$initrd")
built=$(since "$start")

# 3. Boot. No KVM: TCG on two virtual CPUs of the baseline x86-64 model:
# emulated AVX is slow, and TFLite's XNNPACK kernels ran 1.5-2.5x faster
# on its SSE2 than with -cpu max or Haswell (AVX2). The console is read
# line by line; the tests print VIVID-RESULT at the end.
if ! qemu-system-x86_64 --version >/dev/null 2>&1; then
	say "skipped: qemu-system-x86_64 cannot run on this machine"
	exit 0
fi
append="console=ttyS0 panic=-1 quiet"
[ -n "${VIVID_RUN:-}" ] && append="$append vivid.run=$VIVID_RUN"
[ -n "${VIVID_RATE_SECONDS:-}" ] && append="$append vivid.rate_seconds=$VIVID_RATE_SECONDS"
log="$VIVID_DIR/console.log"
say "booting Debian's kernel $KERNEL_VERSION in qemu with vivid ($(du -m "$initrd" | cut -f1) MB initramfs); console in $log"
kernel="$kdir/boot/vmlinux-$kver"
[ -f "$kernel" ] || kernel="$kdir/boot/vmlinuz-$kver"
boot=$(date +%s.%N)
rm -f "$log.tmp"
set +e
timeout "${VIVID_TIMEOUT:-600}" qemu-system-x86_64 -accel tcg -cpu qemu64 -smp 2 -m 2048 -nic none \
	-nographic -no-reboot -kernel "$kernel" -initrd "$initrd" -append "$append" </dev/null 2>&1 |
	sed -u 's/\r//g; s/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g' |
	while IFS= read -r line; do
		case "$line" in
		*VIVID-BOOT* | *VIVID-FIRST-FRAME*) echo "$line ($(since "$boot") s after qemu started)" ;;
		SeaBIOS* | iPXE* | "Press Ctrl-B"* | "Booting from"* | "") ;;
		*) echo "$line" ;;
		esac
		echo "$line" >>"$log.tmp"
	done
qrc=${PIPESTATUS[0]}
set -e
mv -f "$log.tmp" "$log"
result=$(grep -a -o 'VIVID-RESULT rc=[0-9]*' "$log" | tail -1 || true)
passed=$(grep -a -c -- '^--- PASS' "$log" || true)
failed=$(grep -a -c -- '^--- FAIL' "$log" || true)
timing="build and initramfs $built s, VM $(since "$boot") s, whole run $(since "$start") s"
case "$result" in
"VIVID-RESULT rc=0")
	say "$passed passed, $failed failed against vivid ($timing)"
	;;
"")
	[ "$qrc" = 124 ] && fail "the VM did not finish within ${VIVID_TIMEOUT:-600} s ($timing); console in $log"
	fail "the VM stopped without a result (qemu exit $qrc, $timing); console in $log"
	;;
*)
	fail "$failed of $((passed + failed)) tests failed against vivid ($result, $timing); console in $log"
	;;
esac
