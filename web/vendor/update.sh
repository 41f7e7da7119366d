#!/usr/bin/env bash
# Regenerates web/static/vendor from the versions pinned in package.json and
# package-lock.json: installs them with `npm ci` and copies the browser
# builds Starling serves. Nothing is fetched at run time; the copies are
# embedded in the binary. web/TestVendoredBuildsMatchTheLockfile checks
# that the copies equal what npm installs.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
out=../static/vendor
rm -rf "$out"
mkdir -p "$out/hls.js" "$out/livekit-client"
cp node_modules/hls.js/dist/hls.min.mjs node_modules/hls.js/LICENSE "$out/hls.js/"
# The ES module build bundles its dependencies (it imports no bare module
# specifiers), so the room page imports it as it is. Source maps stay out.
cp node_modules/livekit-client/dist/livekit-client.esm.mjs node_modules/livekit-client/LICENSE "$out/livekit-client/"
echo "web/static/vendor updated:"
find "$out" -type f -printf '  %p %s bytes\n' | sort
