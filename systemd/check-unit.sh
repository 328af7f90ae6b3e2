#!/usr/bin/env bash
# check-unit.sh checks systemd/inspectd.service as `make install` writes it:
# `systemd-analyze verify` on the unit alone and with each example drop-in,
# and the `systemd-analyze security` exposure of the unit, which must not
# exceed MAX (offline, so no running systemd is needed: systemd 252+).
# `make unit-check` runs it.
#
# usage: check-unit.sh INSPECTD_BINARY MAX_EXPOSURE
set -euo pipefail

bin=$(realpath "$1")
max=$2
here=$(cd "$(dirname "$0")" && pwd)

if ! systemd-analyze security --help 2>&1 | grep -q -- --offline; then
	echo "check-unit.sh: SKIP: systemd-analyze $(systemd-analyze --version | head -1) has no --offline security review (systemd 252 or newer has)"
	exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The unit as installed with PREFIX=/usr, except that ExecStart names the
# binary just built: verify checks that it exists and is executable.
unit=$work/inspectd.service
sed -e "s|@PREFIX@/bin/inspectd|$bin|" -e 's|@PREFIX@|/usr|g' "$here/inspectd.service" > "$unit"

verify() { # verify WHAT: systemd-analyze verify prints nothing and succeeds
	local out
	if ! out=$(systemd-analyze verify --man=no "$unit" 2>&1) || [ -n "$out" ]; then
		echo "check-unit.sh: systemd-analyze verify failed for $1:" >&2
		echo "$out" >&2
		exit 1
	fi
}
verify "the unit"
mkdir "$work/inspectd.service.d"
for d in "$here"/dropins/*.conf; do
	cp "$d" "$work/inspectd.service.d/"
	verify "the unit with $(basename "$d")"
	rm "$work/inspectd.service.d/$(basename "$d")"
done

# --threshold takes the exposure in tenths.
threshold=$(awk -v m="$max" 'BEGIN { printf "%d", m * 10 + 0.5 }')
if ! out=$(systemd-analyze security --offline=true --threshold="$threshold" "$unit" 2>&1); then
	echo "$out" | grep -E '✗|Overall' >&2
	echo "check-unit.sh: the unit's exposure is above $max" >&2
	exit 1
fi
echo "check-unit.sh: verify passed (unit and $(ls "$here"/dropins/*.conf | wc -l) drop-ins); $(echo "$out" | grep -o 'Overall exposure level.*')"
