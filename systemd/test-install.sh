#!/usr/bin/env bash
# test-install.sh checks that `make install` and `make uninstall` honour
# PREFIX and DESTDIR: everything lands under DESTDIR/PREFIX (the unit and the
# configuration where systemd looks), the unit runs the binary at PREFIX, the
# installed binary loads the installed library, a second install keeps an
# edited configuration, and uninstall leaves only the configuration.
# `make package-test` runs it.
#
# usage: test-install.sh (from the repository root)
set -euo pipefail

pass=0 fail=0
check() {
	local what=$1
	shift
	if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $what" >&2; fi
}
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
prefix=/opt/inspectd-test

make --no-print-directory -s install DESTDIR="$dest" PREFIX="$prefix" > /dev/null
for f in $prefix/bin/inspectd $prefix/lib/inspectd/libtensorflowlite_c.so $prefix/share/inspectd/mobilenet_quant_v1_224.tflite \
	$prefix/lib/systemd/system/inspectd.service $prefix/lib/sysusers.d/inspectd.conf $prefix/share/man/man1/inspectd.1.gz \
	$prefix/share/doc/inspectd/README.md $prefix/share/doc/inspectd/examples/coral-usb.conf /etc/inspectd/inspectd.yaml; do
	check "$f installed" test -f "$dest$f"
done
check "nothing outside PREFIX but /etc/inspectd" test "$(cd "$dest" && find . -type f | grep -v "^\.$prefix/" | grep -v '^\./etc/inspectd/')" = ""
check "unit runs $prefix/bin/inspectd" grep -q "^ExecStart=$prefix/bin/inspectd run " "$dest$prefix/lib/systemd/system/inspectd.service"
check "no @PREFIX@ left in the unit" test "$(grep -c @PREFIX@ "$dest$prefix/lib/systemd/system/inspectd.service")" = 0
check "installed binary loads the installed library" \
	grep -q "libtensorflowlite_c.so => $dest$prefix/bin/../lib/inspectd/libtensorflowlite_c.so" <(ldd "$dest$prefix/bin/inspectd")

echo "# edited" >> "$dest/etc/inspectd/inspectd.yaml"
make --no-print-directory -s install DESTDIR="$dest" PREFIX="$prefix" > /dev/null
check "second install keeps the edited configuration" grep -q '^# edited$' "$dest/etc/inspectd/inspectd.yaml"

make --no-print-directory -s uninstall DESTDIR="$dest" PREFIX="$prefix" > /dev/null
check "uninstall leaves only the configuration" test "$(cd "$dest" && find . -type f)" = "./etc/inspectd/inspectd.yaml"

echo "test-install.sh: $pass passed, $fail failed"
[ "$fail" = 0 ]
