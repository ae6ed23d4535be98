#!/usr/bin/env bash
# scripts/vendor-swagger-ui.sh — put Swagger UI's static files (the npm package
# swagger-ui-dist, pinned by version and sha256) where the docs component embeds them at
# build time: components/docs/vendor/. `make components` runs it; it does nothing when
# the files are already there.
#
# The tarball comes from the npm registry (no npm needed) and is cached in
# $CINEMA_TOOLS_DIR (default /var/tmp/cinema-tools), so later clones need no network.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=5.35.0
SHA256=1b8e891893404ea4c3558b6a87e2a3e494e7eedba41168c2ece5800a391a6ea6
URL="https://registry.npmjs.org/swagger-ui-dist/-/swagger-ui-dist-${VERSION}.tgz"
FILES=(swagger-ui-bundle.js swagger-ui-standalone-preset.js swagger-ui.css favicon-32x32.png LICENSE)
TOOLS_DIR=${CINEMA_TOOLS_DIR:-/var/tmp/cinema-tools}
VENDOR=components/docs/vendor
TARBALL="$TOOLS_DIR/swagger-ui-dist-${VERSION}.tgz"

if [ "$(cat "$VENDOR/VERSION" 2>/dev/null)" = "$VERSION" ]; then
  exit 0
fi
mkdir -p "$TOOLS_DIR"
if ! echo "$SHA256  $TARBALL" | sha256sum --check --status 2>/dev/null; then
  echo "downloading swagger-ui-dist $VERSION from the npm registry..."
  curl --fail --silent --show-error --location --retry 3 -o "$TARBALL.part" "$URL" || {
    echo "could not download $URL: check access to registry.npmjs.org, or place the file at $TARBALL" >&2
    exit 1
  }
  if ! echo "$SHA256  $TARBALL.part" | sha256sum --check --status; then
    echo "swagger-ui-dist $VERSION from $URL does not match its pinned sha256; not using it" >&2
    rm -f "$TARBALL.part"
    exit 1
  fi
  mv "$TARBALL.part" "$TARBALL"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$TARBALL" -C "$work" "${FILES[@]/#/package/}"
rm -rf "$VENDOR"
mkdir -p "$VENDOR"
cp "${FILES[@]/#/$work/package/}" "$VENDOR/"
echo "$VERSION" > "$VENDOR/VERSION"
echo "swagger-ui-dist $VERSION: $VENDOR"
