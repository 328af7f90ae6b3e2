#!/usr/bin/env bash
# test-deb.sh installs the Debian package into a scratch root with the real
# dpkg (--root, maintainer scripts run chrootless against $DPKG_ROOT, as
# dpkg's own DPKG_ROOT support intends), and checks what an operator relies
# on: the files and their modes, the user, the state directories, the
# enabled unit, a binary that runs from the installed tree; then an upgrade
# (over itself, and to a newer version) with a changed conffile and a fitted
# model in the state directory, neither of which may be lost; then remove
# (data kept) and purge (data gone). The host's users and units are checked
# untouched. `make package-test` runs it.
#
# usage: test-deb.sh DEB DEB_VERSION BINARY_VERSION [ARM64_DEB]
set -euo pipefail

deb=$(realpath "$1")
version=$2
binary_version=$3
arm64_deb=${4:+$(realpath "$4")}
native=

if [ "$(id -u)" != 0 ]; then
	if command -v fakeroot >/dev/null; then
		exec fakeroot -- "$0" "$@"
	fi
	echo "test-deb.sh: SKIP: needs root or fakeroot (apt-get -o DPkg::Lock::Timeout=600 install fakeroot) to install into a scratch root"
	exit 0
fi

pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { # check DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then ok; else bad "$what"; fi
}

work=$(mktemp -d)
[ -n "${TEST_DEB_KEEP:-}" ] && echo "test-deb.sh: keeping $work" >&2 || trap 'rm -rf "$work"' EXIT
root=$work/root

# The host must come out as it went in.
host_state() {
	sha256sum /etc/passwd /etc/group /etc/shadow /etc/gshadow 2>/dev/null
	ls -la /etc/systemd/system/multi-user.target.wants/ /var/lib/systemd/deb-systemd-helper-enabled/ 2>/dev/null || true
}
host_before=$(host_state)

# A minimal root: the account files as base-passwd makes them, dpkg's database.
mkdir -p "$root/etc" "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
printf 'root:x:0:0:root:/root:/bin/bash\n' > "$root/etc/passwd"
printf 'root:x:0:\nvideo:x:44:\n' > "$root/etc/group"
printf 'root:*:19000:0:99999:7:::\n' > "$root/etc/shadow"
printf 'root:*::\nvideo:*::\n' > "$root/etc/gshadow"
chmod 0640 "$root/etc/shadow" "$root/etc/gshadow"
: > "$root/var/lib/dpkg/status"
: > "$root/var/lib/dpkg/available"

dpkg_root() {
	dpkg --root="$root" --force-script-chrootless --force-depends --log=/dev/null \
		--no-triggers --force-confold "$@" > "$work/dpkg.log" 2>&1 || {
		cat "$work/dpkg.log" >&2
		return 1
	}
}
status() { dpkg-query --root="$root" -W -f '${Status}' inspectd 2>/dev/null || true; }
mode() { stat -c '%a %u:%g' "$root$1"; }
uid=
gid=

# --- install ---------------------------------------------------------------
dpkg_root -i "$deb"
check "installed" test "$(status)" = "install ok installed"
check "version" test "$(dpkg-query --root="$root" -W -f '${Version}' inspectd)" = "$version"
uid=$(awk -F: '$1 == "inspectd" { print $3 }' "$root/etc/passwd")
gid=$(awk -F: '$1 == "inspectd" { print $3 }' "$root/etc/group")
check "user inspectd created (uid '$uid', gid '$gid')" test -n "$uid" -a -n "$gid" -a "$uid" != 0
check "user inspectd: home /var/lib/inspectd, no login shell" \
	grep -qE "^inspectd:x:$uid:$gid:[^:]*:/var/lib/inspectd:/usr/sbin/nologin$" "$root/etc/passwd"
check "inspectd in the group video" grep -qE '^video:x:44:(.*,)?inspectd(,.*)?$' "$root/etc/group"

while read -r path want; do
	want=${want//UID/$uid}
	want=${want//GID/$gid}
	if [ ! -e "$root$path" ]; then
		bad "$path missing"
	else
		check "$path mode/owner $(mode "$path"), want $want" test "$(mode "$path")" = "$want"
	fi
done <<'EOF'
/usr/bin/inspectd 755 0:0
/usr/lib/inspectd/libtensorflowlite_c.so 644 0:0
/usr/share/inspectd/mobilenet_quant_v1_224.tflite 644 0:0
/lib/systemd/system/inspectd.service 644 0:0
/usr/lib/sysusers.d/inspectd.conf 644 0:0
/usr/share/doc/inspectd/copyright 644 0:0
/usr/share/doc/inspectd/changelog.gz 644 0:0
/usr/share/doc/inspectd/examples/gpu.conf 644 0:0
/etc/inspectd 770 0:GID
/etc/inspectd/inspectd.yaml 640 0:GID
/var/lib/inspectd 750 UID:GID
/var/cache/inspectd 750 UID:GID
EOF
check "conffile registered" grep -q '^ /etc/inspectd/inspectd.yaml ' <(dpkg-query --root="$root" -W -f '${Conffiles}\n' inspectd)
check "unit enabled (multi-user.target.wants)" \
	test "$(readlink "$root/etc/systemd/system/multi-user.target.wants/inspectd.service")" = /lib/systemd/system/inspectd.service
check "unit runs /usr/bin/inspectd" grep -q '^ExecStart=/usr/bin/inspectd run --config /etc/inspectd/inspectd.yaml$' "$root/lib/systemd/system/inspectd.service"

# The installed binary runs from the installed tree: its library through
# $ORIGIN only (never the build tree), the bundled backbone intact.
check "RUNPATH is \$ORIGIN/../lib/inspectd only" \
	test "$(readelf -d "$root/usr/bin/inspectd" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')" = '$ORIGIN/../lib/inspectd'
[ "$(dpkg-deb -f "$deb" Architecture)" = "$(dpkg --print-architecture)" ] && native=1
if [ -n "$native" ]; then
	run() { env -u INSPECTD_SHARE -u LD_LIBRARY_PATH "$root/usr/bin/inspectd" "$@"; }
	out=$(run version 2>&1) || bad "inspectd version: $out"
	check "inspectd version says $binary_version: $out" grep -qx "inspectd $binary_version" <<<"$out"
	check "inspectd version names TFLite 2.9: $out" grep -qE '^tflite +2\.9\.' <<<"$out"
	check "inspectd config check on the packaged configuration" run config check --here=false "$root/etc/inspectd/inspectd.yaml" > /dev/null
fi

# --- the operator's changes: a site configuration and a fitted model -------
sed -i 's/^device_id: .*/device_id: site-changed-station/' "$root/etc/inspectd/inspectd.yaml"
echo "# changed on site" >> "$root/etc/inspectd/inspectd.yaml"
if [ -n "$native" ]; then
	# Fitted by the installed binary on the bundled backbone (found next to
	# it, no INSPECTD_SHARE): a few synthetic frames, a small d, no probes.
	run capture export --out "$work/good" --train 12 --test 0 > /dev/null
	printf 'state_dir: %s\nmodel: {optimize: "off", features: 32, min_features: 32, context_pool: 0}\n' "$work/state" > "$work/fit.yaml"
	run fit --data "$work/good" --config "$work/fit.yaml" --out "$root/var/lib/inspectd/model.safetensors" > "$work/fit.log" 2>&1 ||
		{ cat "$work/fit.log" >&2; bad "inspectd fit with the installed binary"; }
else
	head -c 65536 /dev/urandom > "$root/var/lib/inspectd/model.safetensors"
fi
chown "$uid:$gid" "$root/var/lib/inspectd/model.safetensors"
chmod 0600 "$root/var/lib/inspectd/model.safetensors"
mkdir -p "$root/var/lib/inspectd/mqtt-outbox"
echo queued > "$root/var/lib/inspectd/mqtt-outbox/0000000001.msg"
chown -R "$uid:$gid" "$root/var/lib/inspectd/mqtt-outbox"
conf_sum=$(sha256sum < "$root/etc/inspectd/inspectd.yaml")
model_sum=$(sha256sum < "$root/var/lib/inspectd/model.safetensors")
kept() { # kept WHEN: the site's files are as they were
	check "$1: configuration kept" test "$(sha256sum < "$root/etc/inspectd/inspectd.yaml")" = "$conf_sum"
	check "$1: configuration mode/owner kept" test "$(mode /etc/inspectd/inspectd.yaml)" = "640 0:$gid"
	check "$1: model kept" test "$(sha256sum < "$root/var/lib/inspectd/model.safetensors")" = "$model_sum"
	check "$1: model owner kept" test "$(mode /var/lib/inspectd/model.safetensors)" = "600 $uid:$gid"
	check "$1: MQTT outbox kept" test -f "$root/var/lib/inspectd/mqtt-outbox/0000000001.msg"
}

# --- upgrade over itself, then to a newer version ---------------------------
dpkg_root -i "$deb"
check "reinstalled" test "$(status)" = "install ok installed"
kept "reinstall"
newer=$work/inspectd_newer.deb
dpkg-deb -R "$deb" "$work/newer"
sed -i "s/^Version: .*/Version: $version+upgrade1/" "$work/newer/DEBIAN/control"
dpkg-deb --root-owner-group -Zgzip -z1 --build "$work/newer" "$newer" >/dev/null
dpkg_root -i "$newer"
check "upgraded" test "$(dpkg-query --root="$root" -W -f '${Version} ${Status}' inspectd)" = "$version+upgrade1 install ok installed"
kept "upgrade"
check "upgrade: one user inspectd, same uid" test "$(grep -c '^inspectd:' "$root/etc/passwd") $(awk -F: '$1 == "inspectd" { print $3 }' "$root/etc/passwd")" = "1 $uid"
check "upgrade: still enabled" test -L "$root/etc/systemd/system/multi-user.target.wants/inspectd.service"

# --- roll back: the older version over the newer -----------------------------
dpkg_root -i "$deb"
check "rolled back" test "$(dpkg-query --root="$root" -W -f '${Version}' inspectd)" = "$version"
kept "roll back"

# --- remove keeps the data, purge deletes it --------------------------------
dpkg_root -r inspectd
check "removed, configuration kept" test "$(status)" = "deinstall ok config-files"
check "remove: binary gone" test ! -e "$root/usr/bin/inspectd"
check "remove: unit gone" test ! -e "$root/lib/systemd/system/inspectd.service"
check "remove: model kept" test "$(sha256sum < "$root/var/lib/inspectd/model.safetensors")" = "$model_sum"
check "remove: configuration kept" test "$(sha256sum < "$root/etc/inspectd/inspectd.yaml")" = "$conf_sum"
# A remote configuration push leaves the replaced file beside the conffile.
cp -p "$root/etc/inspectd/inspectd.yaml" "$root/etc/inspectd/inspectd.yaml.prev"
dpkg_root -P inspectd
check "purged" test -z "$(status)" -o "$(status)" = "unknown ok not-installed"
check "purge: /var/lib/inspectd gone" test ! -e "$root/var/lib/inspectd"
check "purge: /var/cache/inspectd gone" test ! -e "$root/var/cache/inspectd"
check "purge: /etc/inspectd gone" test ! -e "$root/etc/inspectd"
check "purge: enablement gone" test ! -e "$root/etc/systemd/system/multi-user.target.wants/inspectd.service"

# --- the arm64 package holds the same files, for arm64 ----------------------
if [ -n "$arm64_deb" ]; then
	list() { dpkg-deb -c "$1" | awk '{ print $1, $2, $6 }' | sort; }
	check "arm64 package: architecture arm64" test "$(dpkg-deb -f "$arm64_deb" Architecture)" = arm64
	check "arm64 package: same paths, modes and owners as $(basename "$deb")" diff <(list "$deb") <(list "$arm64_deb")
	dpkg-deb -x "$arm64_deb" "$work/arm64"
	check "arm64 package: an aarch64 binary and library" \
		test "$(readelf -h "$work/arm64/usr/bin/inspectd" "$work/arm64/usr/lib/inspectd/libtensorflowlite_c.so" | grep -c 'Machine: *AArch64')" = 2
fi

check "host users and units untouched" test "$(host_state)" = "$host_before"

echo "test-deb.sh: $pass passed, $fail failed"
[ "$fail" = 0 ]
