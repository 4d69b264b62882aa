#!/usr/bin/env bash
# Builds the Debian package of kisvault with dpkg-deb (no debhelper: the binary is built
# by SwiftPM): the static-stdlib release binary (stripped), its man page, bash/zsh/fish
# completions, the systemd units (packaging/systemd), and the alerting rules as an
# example. Then lints it with lintian and prints where the .deb is.
#
#   make deb            (or: bash scripts/make-deb.sh [OUTDIR])
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-.build-static}
swift=${SWIFT:-swift}
version=$(sed -n 's/^public let kisvaultVersion = "\(.*\)".*/\1/p' Sources/KISAPI/KISClient.swift)
revision=${DEB_REVISION:-1}   # DEB_REVISION=2: a second build of one version, to try an upgrade
arch=$(dpkg --print-architecture)
name="kisvault_${version}-${revision}_${arch}"

"$swift" build -c release --static-swift-stdlib --scratch-path .build-static --product kisvault
binary=.build-static/release/kisvault
python3 scripts/man.py "$binary" > .build-static/kisvault.1

root=$(mktemp -d /tmp/kisvault-deb.XXXXXX)
trap 'rm -rf "$root"' EXIT
pkg="$root/$name"
install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/usr/share/man/man1" "$pkg/usr/share/doc/kisvault/examples" \
    "$pkg/usr/share/bash-completion/completions" "$pkg/usr/share/zsh/vendor-completions" "$pkg/usr/share/fish/vendor_completions.d" \
    "$pkg/lib/systemd/system" "$pkg/usr/lib/systemd/user"
install -m 0755 "$binary" "$pkg/usr/bin/kisvault"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$pkg/usr/bin/kisvault"
gzip -9n < .build-static/kisvault.1 > "$pkg/usr/share/man/man1/kisvault.1.gz"
# bash-completion sources the file: no #! line.
"$binary" --generate-completion-script bash | sed '1{/^#!/d}' > "$pkg/usr/share/bash-completion/completions/kisvault"
"$binary" --generate-completion-script zsh > "$pkg/usr/share/zsh/vendor-completions/_kisvault"
"$binary" --generate-completion-script fish > "$pkg/usr/share/fish/vendor_completions.d/kisvault.fish"
install -m 0644 packaging/systemd/kisvault-agent.service "$pkg/lib/systemd/system/kisvault-agent.service"
install -m 0644 packaging/systemd/user/kisvault-agent.service "$pkg/usr/lib/systemd/user/kisvault-agent.service"
install -m 0644 packaging/systemd/kisvault-agent.socket "$pkg/lib/systemd/system/kisvault-agent.socket"
install -m 0644 packaging/systemd/user/kisvault-agent.socket "$pkg/usr/lib/systemd/user/kisvault-agent.socket"
install -m 0644 packaging/prometheus/kisvault-alerts.yml packaging/prometheus/kisvault-alerts.test.yml "$pkg/usr/share/doc/kisvault/examples/"
chmod 0644 "$pkg"/usr/share/bash-completion/completions/kisvault "$pkg"/usr/share/zsh/vendor-completions/_kisvault "$pkg"/usr/share/fish/vendor_completions.d/kisvault.fish

cat > "$pkg/usr/share/doc/kisvault/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: kisvault
Source: https://github.com/kisvault/kisvault

Files: *
Copyright: 2026 the kisvault authors
License: none-yet
 The authors have not chosen a license for kisvault yet; until they do, no rights
 are granted beyond those the law gives.
EOF
changelog=$(mktemp)
cat > "$changelog" <<EOF
kisvault (${version}-${revision}) unstable; urgency=medium

  * Package built from the repository with scripts/make-deb.sh.

 -- kisvault maintainers <maintainers@kisvault.example>  $(date -R -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}")
EOF
gzip -9n < "$changelog" > "$pkg/usr/share/doc/kisvault/changelog.Debian.gz"
rm -f "$changelog"
find "$pkg/usr/share/doc/kisvault" -type f -exec chmod 0644 {} +

# What lintian reports and is right to, here (docs/OPERATIONS.md, "The package"): SwiftPM
# links every dependency into the one binary, libyaml (vendored by Yams) and zlib (in the
# static Swift runtime) included; Debian's own libyaml and zlib cannot be linked instead.
install -d "$pkg/usr/share/lintian/overrides"
cat > "$pkg/usr/share/lintian/overrides/kisvault" <<OVERRIDES
# Yams, the YAML reader, carries libyaml's sources; SwiftPM builds them into the binary.
kisvault: embedded-library libyaml [usr/bin/kisvault]
# The static Swift runtime (--static-swift-stdlib) carries zlib.
kisvault: embedded-library zlib [usr/bin/kisvault]
OVERRIDES
chmod 0644 "$pkg/usr/share/lintian/overrides/kisvault"

# The C libraries the binary links against, as Debian packages.
depends=$(ldd "$pkg/usr/bin/kisvault" | awk '/=>/ {print $3}' | while read -r lib; do dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null; done \
    | cut -d: -f1 | sort -u | while read -r p; do printf '%s (>= %s), ' "$p" "$(dpkg-query -W -f='${Version}' "$p" | sed 's/-[^-]*$//')"; done | sed 's/, $//')
size=$(du -sk "$pkg/usr" "$pkg/lib" | awk '{s += $1} END {print s}')
cat > "$pkg/DEBIAN/control" <<EOF
Package: kisvault
Version: ${version}-${revision}
Architecture: ${arch}
Maintainer: kisvault maintainers <maintainers@kisvault.example>
Installed-Size: ${size}
Depends: ${depends}
Section: utils
Priority: optional
Homepage: https://github.com/kisvault/kisvault
Description: credential manager for the Korea Investment & Securities Open API
 kisvault keeps KIS Open API appkeys and appsecrets in an encrypted vault
 (libsodium secretbox, Argon2id keyslots) and hands scripts fresh WebSocket
 approval keys and REST access tokens, issuing them only when needed, for one
 account or thousands, with an agent so bots need no passphrase.
 .
 This package holds the kisvault command, its manual page and completions,
 systemd units for the agent, and Prometheus alerting rules as an example.
EOF
(cd "$pkg" && find usr lib -type f -exec md5sum {} + | sort -k 2 > DEBIAN/md5sums)
chmod 0644 "$pkg/DEBIAN/md5sums" "$pkg/DEBIAN/control"
# The units are configuration an operator enables, not started on install.
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$out/$name.deb" >/dev/null
echo "built $out/$name.deb"
if command -v lintian >/dev/null; then
    lintian --display-info --show-overrides "$out/$name.deb" | grep -v spelling-error-in-binary || true
fi
