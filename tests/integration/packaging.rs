//! The packaging files parse, the icons load at the sizes they claim, and
//! every file the .deb lists exists.

use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn macos_plists_parse_and_say_menu_bar_only() {
    let info = plist::Value::from_file(repo("packaging/macos/Info.plist")).unwrap();
    let info = info.as_dictionary().unwrap();
    assert_eq!(info["LSUIElement"].as_boolean(), Some(true));
    assert_eq!(info["CFBundleExecutable"].as_string(), Some("unstuck"));
    assert_eq!(
        info["CFBundleShortVersionString"].as_string(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    let agent = plist::Value::from_file(repo("packaging/macos/org.unstuck.Unstuck.plist")).unwrap();
    let agent = agent.as_dictionary().unwrap();
    assert_eq!(agent["RunAtLoad"].as_boolean(), Some(true));
    assert!(
        agent["ProgramArguments"].as_array().unwrap()[0]
            .as_string()
            .unwrap()
            .ends_with("/unstuck")
    );
}

#[test]
fn windows_files_are_well_formed_xml() {
    for file in [
        "packaging/windows/unstuck.manifest",
        "packaging/windows/main.wxs",
    ] {
        let text = std::fs::read_to_string(repo(file)).unwrap();
        roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

#[test]
fn the_desktop_entry_has_what_a_desktop_needs() {
    let text = std::fs::read_to_string(repo("packaging/linux/unstuck.desktop")).unwrap();
    assert_eq!(text.lines().next(), Some("[Desktop Entry]"));
    for key in [
        "Type=Application",
        "Name=Unstuck",
        "Exec=unstuck",
        "Icon=unstuck",
    ] {
        assert!(text.lines().any(|l| l == key), "{key} missing");
    }
}

/// The width and height in a PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    assert_eq!(&bytes[12..16], b"IHDR");
    let word = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (word(16), word(20))
}

#[test]
fn every_icon_loads_at_its_size() {
    for state in [
        "healthy",
        "backing-up",
        "stalled",
        "failed",
        "no-phone",
        "unstuck",
    ] {
        for size in [16, 22, 24, 32, 48, 64, 128, 256] {
            let path = repo(&format!("resources/icons/png/{state}-{size}.png"));
            assert_eq!(png_size(&path), (size, size), "{}", path.display());
        }
    }
    for state in ["healthy", "backing-up", "stalled", "failed", "no-phone"] {
        assert_eq!(
            png_size(&repo(&format!(
                "resources/icons/template/{state}-Template.png"
            ))),
            (22, 22)
        );
        assert_eq!(
            png_size(&repo(&format!(
                "resources/icons/template/{state}-Template@2x.png"
            ))),
            (44, 44)
        );
    }
    // The .ico: a header, then one directory entry per size.
    let ico = std::fs::read(repo("resources/icons/unstuck.ico")).unwrap();
    assert_eq!(&ico[..4], &[0, 0, 1, 0], "not an icon file");
    let count = u16::from_le_bytes([ico[4], ico[5]]) as usize;
    let sizes: Vec<u32> = (0..count)
        .map(|i| match ico[6 + 16 * i] {
            0 => 256,
            n => u32::from(n),
        })
        .collect();
    assert!(
        sizes.contains(&16) && sizes.contains(&32) && sizes.contains(&256),
        "{sizes:?}"
    );
}

#[test]
fn every_file_the_deb_lists_exists() {
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo("Cargo.toml")).unwrap()).unwrap();
    let assets = manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .unwrap();
    for asset in assets {
        let source = asset[0].as_str().unwrap();
        if source.starts_with("target/") {
            continue;
        }
        assert!(repo(source).exists(), "{source} is listed but missing");
    }
}

/// Every test the README's fault table names exists, so the table cannot
/// promise a row that nothing checks.
#[test]
fn the_fault_table_names_real_tests() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let table = readme
        .split("#### Faults, what you see, and what is kept")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").nth(2))
        .expect("the fault table");
    let mut checked = 0;
    for row in table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| ---"))
        .skip(1)
    {
        let tests = row.trim_end_matches('|').rsplit('|').next().unwrap();
        let mut module = "";
        for name in tests.split('`').skip(1).step_by(2) {
            let (m, f) = name.rsplit_once("::").unwrap_or((module, name));
            module = m;
            let source = std::fs::read_to_string(root.join(format!("tests/integration/{m}.rs")))
                .unwrap_or_else(|e| panic!("{m}: {e}"));
            let names: Vec<String> = if let Some((stem, rest)) = f.split_once('{') {
                let (alts, tail) = rest.split_once('}').unwrap();
                alts.split(',')
                    .map(|a| format!("{stem}{a}{tail}"))
                    .collect()
            } else {
                vec![f.to_owned()]
            };
            for f in names {
                assert!(
                    source.contains(&format!("fn {f}(")),
                    "the README names {m}::{f}, which does not exist"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 30, "only {checked} tests named");
}
