#!/usr/bin/env bash
# mkdeb.sh turns a `make install DESTDIR=STAGE PREFIX=/usr` tree into
# OUT/inspectd_VERSION_ARCH.deb with dpkg-deb: it strips the binaries, points
# the binary's library search path at the bundled library only, adds the
# copyright (with the licence of every Go module linked in), the changelog,
# the maintainer scripts, conffiles, md5sums and the control file. `make deb`
# and `make deb-arm64` run it.
#
# usage: mkdeb.sh --stage DIR --out DIR --arch amd64|arm64 --version V
#                 --commit HASH --maintainer 'Name <mail>' [--strip PROGRAM]
#                 [--compress xz|gzip]   (xz: Debian's default, the smallest;
#                                         gzip: a fast build for the tests)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
stage= out= arch= version= commit= maintainer= strip=strip compress=xz
while [ $# -gt 0 ]; do
	case "$1" in
	--stage) stage=$2 ;;
	--out) out=$2 ;;
	--arch) arch=$2 ;;
	--version) version=$2 ;;
	--commit) commit=$2 ;;
	--maintainer) maintainer=$2 ;;
	--strip) strip=$2 ;;
	--compress) compress=$2 ;;
	*) echo "mkdeb.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift 2
done
for v in stage out arch version commit maintainer; do
	[ -n "${!v}" ] || { echo "mkdeb.sh: --$v is required" >&2; exit 2; }
done
case "$version" in [0-9]*) ;; *) echo "mkdeb.sh: version '$version' must start with a digit (Debian policy 5.6.12)" >&2; exit 1 ;; esac

bin=$stage/usr/bin/inspectd
lib=$stage/usr/lib/inspectd/libtensorflowlite_c.so
for f in "$bin" "$lib" "$stage/lib/systemd/system/inspectd.service" "$stage/etc/inspectd/inspectd.yaml"; do
	[ -f "$f" ] || { echo "mkdeb.sh: $f is missing: stage with make install DESTDIR=$stage PREFIX=/usr" >&2; exit 1; }
done

# The binary finds the library next to itself only: a build tree's path
# (the checkout's build/lib, which test binaries use) must not ship.
want_runpath='$ORIGIN/../lib/inspectd'
have=$(readelf -d "$bin" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')
if [ "$have" != "$want_runpath" ]; then
	chrpath -r "$want_runpath" "$bin" >/dev/null
fi
"$strip" --strip-unneeded --remove-section=.comment --remove-section=.note "$bin" "$lib"

# Dependencies: glibc at the newest symbol version the binary or the library
# asks for; libstdc++ and libgcc for the pinned TensorFlow Lite 2.9 library,
# whose newest C++ symbol version is GLIBCXX_3.4.26 (GCC 9) on amd64 (the
# arm64 build asks for none). A library that asks for more fails here rather
# than on a box with an older libstdc++.
glibc=$(readelf -W --version-info "$bin" "$lib" | grep -oE 'Name: GLIBC_[0-9.]+' | sed 's/Name: GLIBC_//' | sort -V | tail -1)
glibcxx=$(readelf -W --version-info "$lib" | { grep -oE 'Name: GLIBCXX_[0-9.]+' || true; } | sed 's/Name: GLIBCXX_//' | sort -V | tail -1)
if [ -n "$glibcxx" ] && [ "$(printf '%s\n' "$glibcxx" 3.4.26 | sort -V | tail -1)" != 3.4.26 ]; then
	echo "mkdeb.sh: libtensorflowlite_c.so needs GLIBCXX_$glibcxx: raise the libstdc++6 dependency in $0" >&2
	exit 1
fi
depends="libc6 (>= $glibc), libgcc-s1 (>= 3.0), libstdc++6 (>= 9), systemd | systemd-sysusers"
# libturbojpeg0 decodes camera MJPEG (TurboJPEG 2.1 API: Debian 12, Ubuntu
# 22.04 and newer) when the binary was linked against it.
if readelf -d "$bin" | grep -q 'NEEDED.*libturbojpeg'; then
	depends="$depends, libturbojpeg0 (>= 1:2.1)"
fi

# Documentation: copyright and changelog (a native package: changelog.gz).
doc=$stage/usr/share/doc/inspectd
mkdir -p "$doc"
{
	cat "$here/copyright"
	echo
	echo "Go modules linked into /usr/bin/inspectd, each with its licence as it"
	echo "ships in the module:"
	modcache=$(go env GOMODCACHE)
	go version -m "$bin" | awk '$1 == "dep" { print $2, $3 }' | while read -r mod ver; do
		dir=$modcache/$(echo "$mod" | sed 's/[A-Z]/!\L&/g')@$ver
		lic=$(ls "$dir" 2>/dev/null | grep -iE '^(licen[cs]e|copying)(\.md|\.txt)?$' | head -1 || true)
		echo
		echo "Module: $mod $ver"
		if [ -z "$lic" ]; then
			echo "mkdeb.sh: no licence file in $dir" >&2
			exit 1
		elif grep -q 'Apache License' "$dir/$lic" && grep -q 'Version 2.0' "$dir/$lic" && [ "$(wc -l < "$dir/$lic")" -gt 150 ]; then
			echo "License: Apache-2.0"
			echo " The full text is in /usr/share/common-licenses/Apache-2.0."
		else
			echo "License: see below ($lic)"
			sed 's/^$/./; s/^/ /' "$dir/$lic"
		fi
	done
} > "$doc/copyright"
chmod 0644 "$doc/copyright"
date=$(date -R -u -d "@${SOURCE_DATE_EPOCH:-$(git -C "$here" log -1 --format=%ct 2>/dev/null || date +%s)}")
printf 'inspectd (%s) unstable; urgency=medium\n\n  * Built from commit %s.\n\n -- %s  %s\n' \
	"$version" "$commit" "$maintainer" "$date" | gzip -9n > "$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"

install -D -m 0644 "$here/lintian-overrides" "$stage/usr/share/lintian/overrides/inspectd"

# Control area.
ctl=$stage/DEBIAN
rm -rf "$ctl"
mkdir -p "$ctl"
for s in postinst prerm postrm; do
	install -m 0755 "$here/$s" "$ctl/$s"
done
echo /etc/inspectd/inspectd.yaml > "$ctl/conffiles"
(cd "$stage" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort | xargs -d '\n' md5sum) > "$ctl/md5sums"
size=$(du -sk --apparent-size --exclude=DEBIAN "$stage" | cut -f1)
control=$(< "$here/control.in")
control=${control//@VERSION@/$version}
control=${control//@ARCH@/$arch}
control=${control//@INSTALLED_SIZE@/$size}
control=${control//@DEPENDS@/$depends}
control=${control//@MAINTAINER@/$maintainer}
printf '%s\n' "$control" > "$ctl/control"
chmod 0644 "$ctl/conffiles" "$ctl/md5sums" "$ctl/control"

mkdir -p "$out"
deb=$out/inspectd_${version}_$arch.deb
case "$compress" in
xz) zopts=(-Zxz) ;;
gzip) zopts=(-Zgzip -z1) ;;
*) echo "mkdeb.sh: --compress $compress: want xz or gzip (Debian's archive takes no other)" >&2; exit 2 ;;
esac
dpkg-deb --root-owner-group "${zopts[@]}" --build "$stage" "$deb" >/dev/null
echo "mkdeb.sh: $deb ($(du -k "$deb" | cut -f1) KiB; installed $size KiB)"
