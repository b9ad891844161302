#!/usr/bin/env bash
# Assembles Unstuck.app from a release build. Runs on macOS (iconutil is
# macOS's). Usage: packaging/macos/make-app.sh [output folder]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:-"$top/target/macos"}
app="$out/Unstuck.app"
cargo build --release --manifest-path "$top/Cargo.toml"
rm -rf "$app"
mkdir -p "$app/Contents/MacOS" "$app/Contents/Resources"
cp "$top/target/release/unstuck" "$app/Contents/MacOS/unstuck"
cp "$here/Info.plist" "$app/Contents/Info.plist"
# The .icns comes from the PNGs rendered from resources/icons/src/unstuck.svg.
iconset="$out/unstuck.iconset"
rm -rf "$iconset" && mkdir -p "$iconset"
png="$top/resources/icons/png"
cp "$png/unstuck-16.png" "$iconset/icon_16x16.png"
cp "$png/unstuck-32.png" "$iconset/icon_16x16@2x.png"
cp "$png/unstuck-32.png" "$iconset/icon_32x32.png"
cp "$png/unstuck-64.png" "$iconset/icon_32x32@2x.png"
cp "$png/unstuck-128.png" "$iconset/icon_128x128.png"
cp "$png/unstuck-256.png" "$iconset/icon_128x128@2x.png"
cp "$png/unstuck-256.png" "$iconset/icon_256x256.png"
iconutil -c icns "$iconset" -o "$app/Contents/Resources/unstuck.icns"
# The menu-bar icons, as templates the system tints.
cp "$top"/resources/icons/template/*.png "$app/Contents/Resources/"
echo "Built $app"
