//! The tray's icons, one per [`Look`], compiled into the binary from
//! `resources/icons` and decoded to RGBA when the tray starts. The macOS
//! menu bar takes the monochrome template images; other systems the colour
//! PNGs at the size their trays ask for most (32 px, scaled by the host).

use super::view::Look;

/// The PNG bytes of `look`'s icon for this platform.
pub fn png(look: Look) -> &'static [u8] {
    macro_rules! icons {
        ($dir:literal, $suffix:literal) => {
            match look {
                Look::Healthy => {
                    include_bytes!(concat!("../../resources/icons/", $dir, "/healthy", $suffix))
                }
                Look::BackingUp => include_bytes!(concat!(
                    "../../resources/icons/",
                    $dir,
                    "/backing-up",
                    $suffix
                )),
                Look::Stalled => {
                    include_bytes!(concat!("../../resources/icons/", $dir, "/stalled", $suffix))
                }
                Look::Failed => {
                    include_bytes!(concat!("../../resources/icons/", $dir, "/failed", $suffix))
                }
                Look::NoPhone => include_bytes!(concat!(
                    "../../resources/icons/",
                    $dir,
                    "/no-phone",
                    $suffix
                )),
            }
        };
    }
    if cfg!(target_os = "macos") {
        icons!("template", "-Template@2x.png")
    } else {
        icons!("png", "-32.png")
    }
}

/// Decoded pixels: RGBA, row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct Pixels {
    pub rgba: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Decodes a PNG into 8-bit RGBA, whatever its colour type.
pub fn decode(bytes: &[u8]) -> Result<Pixels, String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
    let size = reader
        .output_buffer_size()
        .ok_or("the image is too large")?;
    let mut buf = vec![0; size];
    let info = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
    buf.truncate(info.buffer_size());
    let rgba = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        png::ColorType::GrayscaleAlpha => buf
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0], p[1]])
            .collect(),
        png::ColorType::Grayscale => buf.iter().flat_map(|&g| [g, g, g, 255]).collect(),
        png::ColorType::Indexed => return Err("palette left unexpanded".into()),
    };
    Ok(Pixels {
        rgba,
        width: info.width,
        height: info.height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_look_has_an_icon_that_decodes_and_is_not_blank() {
        for look in [
            Look::Healthy,
            Look::BackingUp,
            Look::Stalled,
            Look::Failed,
            Look::NoPhone,
        ] {
            let p = decode(png(look)).unwrap();
            assert_eq!(p.rgba.len(), (p.width * p.height * 4) as usize, "{look:?}");
            let opaque = p.rgba.chunks_exact(4).filter(|px| px[3] > 128).count();
            // The no-phone icon, a dashed outline, covers the least (7 %).
            assert!(
                opaque > (p.width * p.height / 20) as usize,
                "{look:?} is nearly blank"
            );
        }
    }

    #[test]
    fn the_looks_differ() {
        let healthy = decode(png(Look::Healthy)).unwrap();
        let stalled = decode(png(Look::Stalled)).unwrap();
        assert_ne!(healthy.rgba, stalled.rgba);
    }

    #[test]
    fn a_broken_png_is_an_error_not_a_panic() {
        assert!(decode(b"\x89PNG\r\n\x1a\nnot really").is_err());
        assert!(decode(&png(Look::Healthy)[..40]).is_err());
    }
}
