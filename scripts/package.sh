#!/usr/bin/env bash
# Builds the Debian packages of the agent and the collector (cargo-deb) and a
# tarball with packaging/install.sh for other systems, into
# <target dir>/packages/ and lists them. CARETAKER_PACKAGE_PROFILE picks the
# cargo profile (default release); CARETAKER_PACKAGE_PREBUILT=1 packages the
# binaries already built for it instead of building (the packaging test does,
# as cargo holds the build lock while tests run); CARETAKER_PACKAGE_OUT sets
# another output directory.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || { echo "cargo-deb missing: cargo install cargo-deb --locked" >&2; exit 1; }

profile=${CARETAKER_PACKAGE_PROFILE:-release}
case "$profile" in
  dev) profile_dir=debug ;;
  *) profile_dir=$profile ;;
esac
target=$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
out=${CARETAKER_PACKAGE_OUT:-$target/packages}
version=$(cargo pkgid -p caretaker-agent | sed 's/.*[#@]//')
mkdir -p "$out"

if [ "${CARETAKER_PACKAGE_PREBUILT:-}" != 1 ]; then
  cargo build --locked --profile "$profile" -p caretaker-agent -p caretaker-collector --bins
fi
fast=(); [ "$profile" = release ] || fast=(--fast)   # test builds: quicker compression
for p in agent collector; do
  cargo deb --locked --no-build "${fast[@]}" --profile "$profile" -p "caretaker-$p" -o "$out/" >"$out/cargo-deb-$p.log" 2>&1 ||
    { cat "$out/cargo-deb-$p.log" >&2; exit 1; }
done

# The tarball: bin/, systemd/, config/, install.sh, README.md.
name=caretaker-$version-$(uname -m)-linux
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name/bin"
cp "$target/$profile_dir/caretaker-agent" "$target/$profile_dir/caretaker-collector" "$stage/$name/bin/"
cp -r packaging/systemd packaging/config packaging/install.sh packaging/README.md "$stage/$name/"
tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner -czf "$out/$name.tar.gz" "$name"
ls -1 "$out"/caretaker-agent_"$version"*.deb "$out"/caretaker-collector_"$version"*.deb "$out/$name.tar.gz"
