//! WAR inspection: zips shaped like WARs (web.xml, classes naming servlet packages,
//! libraries that are zips themselves, entries that compress well), written with and
//! without zip64, then damaged: bytes flipped, the sizes in local and central headers
//! made to lie, the file cut short. Whatever comes in, the inspection answers or
//! refuses with a code, under its memory cap per input.

use std::io::{Cursor, Write};

use proptest::prelude::*;
use warship_host::config::UploadConfig;
use warship_host::wars::inspect::inspect;
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

use super::campaign;
use crate::war_inspection::{peak_of, PEAK_MAX};

#[derive(Debug, Clone)]
enum Body {
    Random(Vec<u8>),
    /// One byte, many times: compresses past any ratio.
    Repeated(u8, u32),
    Class(String),
    WebXml(String),
    Jar(Vec<Entry>),
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    body: Body,
    deflated: bool,
}

#[derive(Debug, Clone)]
enum Damage {
    Byte(u32, u8),
    /// A size field of the `nth` local (or central) header set to `value`.
    LyingSize {
        central: bool,
        nth: u8,
        uncompressed: bool,
        value: u32,
    },
    Truncate(u32),
}

#[derive(Debug, Clone)]
struct War {
    entries: Vec<Entry>,
    zip64: bool,
    damage: Vec<Damage>,
}

const NAMES: &[&str] = &[
    "WEB-INF/web.xml",
    "WEB-INF/classes/App.class",
    "WEB-INF/lib/a.jar",
    "WEB-INF/lib/b.jar",
    "META-INF/MANIFEST.MF",
    "index.jsp",
    "WEB-INF/",
    "../escape",
    "/abs",
    "WEB-INF/lib/nested/",
    "META-INF/services/jakarta.servlet.ServletContainerInitializer",
];

fn body(depth: u32) -> BoxedStrategy<Body> {
    let leaf = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512).prop_map(Body::Random),
        (any::<u8>(), 0u32..(4 << 20)).prop_map(|(b, n)| Body::Repeated(b, n)),
        "(javax|jakarta)/servlet/(http/)?[A-Za-z]{1,12}".prop_map(Body::Class),
        "<web-app( version=\"[0-9.]{0,5}\")?( xmlns=\"[a-z:/.]{0,30}\")?>[a-z<>/]{0,20}"
            .prop_map(Body::WebXml),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    prop_oneof![4 => leaf, 1 => proptest::collection::vec(entry(depth - 1), 0..6).prop_map(Body::Jar)].boxed()
}

fn entry(depth: u32) -> impl Strategy<Value = Entry> {
    let name = prop_oneof![
        proptest::sample::select(NAMES).prop_map(str::to_owned),
        "[a-zA-Z0-9/._-]{1,30}"
    ];
    (name, body(depth), any::<bool>()).prop_map(|(name, body, deflated)| Entry {
        name,
        body,
        deflated,
    })
}

fn war() -> impl Strategy<Value = War> {
    let damage = prop_oneof![
        (any::<u32>(), any::<u8>()).prop_map(|(at, b)| Damage::Byte(at, b)),
        (any::<bool>(), any::<u8>(), any::<bool>(), any::<u32>()).prop_map(
            |(central, nth, uncompressed, value)| Damage::LyingSize {
                central,
                nth,
                uncompressed,
                value
            }
        ),
        any::<u32>().prop_map(Damage::Truncate),
    ];
    (
        proptest::collection::vec(entry(2), 0..10),
        any::<bool>(),
        proptest::collection::vec(damage, 0..4),
    )
        .prop_map(|(entries, zip64, damage)| War {
            entries,
            zip64,
            damage,
        })
}

fn bytes_of(body: &Body, zip64: bool) -> Vec<u8> {
    match body {
        Body::Random(bytes) => bytes.clone(),
        Body::Repeated(b, n) => vec![*b; *n as usize],
        Body::Class(name) => [&b"\xca\xfe\xba\xbe "[..], name.as_bytes()].concat(),
        Body::WebXml(text) => text.clone().into_bytes(),
        Body::Jar(entries) => zip_of(entries, zip64),
    }
}

fn zip_of(entries: &[Entry], zip64: bool) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for entry in entries {
        let method = if entry.deflated {
            CompressionMethod::Deflated
        } else {
            CompressionMethod::Stored
        };
        let options = SimpleFileOptions::default()
            .compression_method(method)
            .large_file(zip64);
        // Names the writer refuses (duplicates) are skipped: the damage makes the rest.
        if w.start_file(entry.name.as_str(), options).is_ok() {
            w.write_all(&bytes_of(&entry.body, zip64)).unwrap();
        }
    }
    w.finish().unwrap().into_inner()
}

/// Offsets of each header with `signature` in `bytes`.
fn headers(bytes: &[u8], signature: &[u8; 4]) -> Vec<usize> {
    bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| w == signature)
        .map(|(i, _)| i)
        .collect()
}

fn damaged(war: &War) -> Vec<u8> {
    let mut bytes = zip_of(&war.entries, war.zip64);
    for damage in &war.damage {
        match *damage {
            Damage::Byte(at, b) if !bytes.is_empty() => {
                let at = at as usize % bytes.len();
                bytes[at] = b;
            }
            Damage::LyingSize {
                central,
                nth,
                uncompressed,
                value,
            } => {
                let (signature, field) = if central {
                    (b"PK\x01\x02", 20)
                } else {
                    (b"PK\x03\x04", 18)
                };
                let found = headers(&bytes, signature);
                if let Some(&at) = found.get(nth as usize % found.len().max(1)) {
                    let at = at + field + if uncompressed { 4 } else { 0 };
                    if at + 4 <= bytes.len() {
                        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
                    }
                }
            }
            Damage::Truncate(at) => {
                let keep = at as usize % (bytes.len() + 1);
                bytes.truncate(keep);
            }
            Damage::Byte(..) => {}
        }
    }
    bytes
}

#[test]
fn war_inspection() {
    let limits = UploadConfig::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.war");
    campaign("war-inspection", war(), |war| {
        // From a file, as an upload is inspected.
        std::fs::write(&path, damaged(war)).unwrap();
        let file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
        let (outcome, peak) = peak_of(|| inspect(file, &limits));
        prop_assert!(peak < PEAK_MAX, "an inspection held {peak} bytes");
        if let Err(e) = outcome {
            prop_assert!(!e.code().is_empty() && !e.to_string().is_empty());
        }
        Ok(())
    });
}
