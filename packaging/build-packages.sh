#!/usr/bin/env bash
# Build aioftpd's .deb and .rpm.
#
#   packaging/build-packages.sh            # build both, print their paths
#
# Needs cargo-deb and cargo-generate-rpm (`cargo install --locked cargo-deb
# cargo-generate-rpm`) and dpkg-parsechangelog (Debian's dpkg-dev). Honours CARGO_TARGET_DIR for the binary; generated
# files (man pages, completions, packaged fail2ban jail, stripped binary for
# the rpm) go to target/packaging/ in the source tree, where the
# [package.metadata.*] asset lists in Cargo.toml expect them. Packages land in
# target/packaging/out/.
set -euo pipefail
cd "$(dirname "$0")/.."

target_dir=${CARGO_TARGET_DIR:-target}
gen=target/packaging
out=$gen/out

for tool in cargo-deb cargo-generate-rpm; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "build-packages: $tool is missing: cargo install --locked $tool" >&2
    exit 1
  }
done
command -v dpkg-parsechangelog >/dev/null 2>&1 || {
  echo "build-packages: dpkg-parsechangelog is missing: apt-get install dpkg-dev" >&2
  exit 1
}

cargo build --release --locked
bin=$target_dir/release/aioftpd

rm -rf "$gen"
mkdir -p "$gen/man" "$gen/completions" "$out"

# Generated from the clap definitions, so they always match the binary:
# aioftpd.1 and a page for each subcommand it names.
"$bin" man "$gen/man"
gzip -9n "$gen/man"/*.1
"$bin" completions bash > "$gen/completions/aioftpd.bash"
"$bin" completions zsh > "$gen/completions/_aioftpd"
"$bin" completions fish > "$gen/completions/aioftpd.fish"

# The packaged jail is the repo's jail switched off: installing the package
# must not start banning addresses on a host whose admin never asked for it.
# `enabled = true` in /etc/fail2ban/jail.d/aioftpd.conf (or a jail.local)
# turns it on; see docs/operations.md.
{
  echo "# Installed disabled: set enabled = true and reload fail2ban to use it."
  sed -E 's/^enabled([[:space:]]*)=[[:space:]]*true/enabled\1= false/' \
    packaging/fail2ban/jail.d/aioftpd.conf
} > "$gen/fail2ban-jail.conf"
grep -Eq '^enabled[[:space:]]*=[[:space:]]*false' "$gen/fail2ban-jail.conf" || {
  echo "build-packages: could not disable the packaged fail2ban jail" >&2
  exit 1
}

# The rpm takes a stripped copy (cargo-deb strips its own).
cp "$bin" "$gen/aioftpd"
strip "$gen/aioftpd" 2>/dev/null || true

# The packaged default config must be valid; its base_path, /srv/ftp, exists
# only once the package is installed, so check a copy pointing at a temp dir.
check=$(mktemp -d)
trap 'rm -rf "$check"' EXIT
mkdir "$check/ftp"
sed "s|^base_path = \"/srv/ftp\"|base_path = \"$check/ftp\"|" packaging/aioftpd.toml > "$check/aioftpd.toml"
grep -q "^base_path = \"$check/ftp\"" "$check/aioftpd.toml" || {
  echo "build-packages: packaging/aioftpd.toml has no base_path = \"/srv/ftp\" line" >&2
  exit 1
}
"$bin" check-config --config "$check/aioftpd.toml" >/dev/null

# The .deb's changelog.Debian.gz must describe the version it ships.
version=$("$bin" --version | awk '{print $2}')
changelog_version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
[ "$changelog_version" = "$version-1" ] || {
  echo "build-packages: packaging/debian/changelog is at $changelog_version, the crate at $version: add an entry for $version-1" >&2
  exit 1
}

cargo deb --no-build --locked --output "$out/" >&2
cargo generate-rpm --output "$out/" >&2

ls -1 "$out"/*.deb "$out"/*.rpm
