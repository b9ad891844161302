#!/usr/bin/env bash
# Renders the icon sources in src/ to the PNG sizes Linux and Windows use,
# the macOS menu-bar templates, and the Windows .ico. Needs rsvg-convert
# (librsvg2-bin) and ImageMagick's convert. The rendered files are kept in
# the repository; run this after changing a source.
set -euo pipefail
cd "$(dirname "$0")"
states="healthy backing-up stalled failed no-phone"
mkdir -p png template
for s in $states unstuck; do
  for size in 16 22 24 32 48 64 128 256; do
    rsvg-convert -w "$size" -h "$size" "src/$s.svg" -o "png/$s-$size.png"
  done
done
for s in $states; do
  rsvg-convert -w 22 -h 22 "src/template-$s.svg" -o "template/$s-Template.png"
  rsvg-convert -w 44 -h 44 "src/template-$s.svg" -o "template/$s-Template@2x.png"
done
/usr/bin/convert png/unstuck-16.png png/unstuck-24.png png/unstuck-32.png png/unstuck-48.png \
  png/unstuck-64.png png/unstuck-256.png unstuck.ico
