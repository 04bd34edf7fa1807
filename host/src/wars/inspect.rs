//! What is inside an uploaded WAR, and whether it is safe to keep: a readable zip,
//! no entry escaping its folder, no zip bomb, a `WEB-INF/`. Which servlet API it
//! needs is judged from its entries as they are read ([`super::servlet_api`]).

use std::io::{Read, Seek, SeekFrom};

use serde::{Deserialize, Serialize};
use zip::ZipArchive;

use super::servlet_api::Evidence;
pub use super::servlet_api::{EvidenceSource, ServletApi};
use crate::config::UploadConfig;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inspection {
    pub entries: usize,
    pub uncompressed_bytes: u64,
    pub has_web_xml: bool,
    pub servlet_api: ServletApi,
    pub servlet_api_source: EvidenceSource,
    /// What decided the servlet API, in words.
    pub servlet_api_evidence: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    #[error("the upload is not a readable zip archive ({0}); a WAR is a zip file: rebuild it with your build tool or `jar cf`")]
    NotZip(String),
    #[error("the archive has {count} entries, more than the {max} allowed")]
    TooManyEntries { count: u64, max: usize },
    #[error("entry {name:?} would be written outside the application folder (absolute path or '..'); rebuild the WAR without it")]
    UnsafePath { name: String },
    #[error("the archive expands to {total} bytes, more than the {max} allowed")]
    TooLarge { total: u64, max: u64 },
    #[error("entry {name:?} is compressed {ratio}:1, more than the {max}:1 allowed for large entries (a zip bomb?)")]
    SuspiciousRatio { name: String, ratio: u64, max: u64 },
    #[error("entry {name:?} expands past the size its header declares; the archive is corrupt or hostile")]
    SizeMismatch { name: String },
    #[error("this is a plain JAR, not a WAR: it has no WEB-INF/ folder. Package the application as a WAR (Maven: <packaging>war</packaging>)")]
    PlainJar,
    #[error("the archive has no WEB-INF/ folder, so it is not a web application archive")]
    NoWebInf,
    #[error("the archive's central directory takes {size} bytes, more than the {max} allowed: package fewer entries, or shorter names")]
    DirectoryTooLarge { size: u64, max: u64 },
    /// A library inside the WAR broke one of the same rules.
    #[error("in {jar}: {error}")]
    Nested { jar: String, error: Box<InspectError> },
}

impl InspectError {
    /// Stable code for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotZip(_) => "war.not_zip",
            Self::TooManyEntries { .. } => "war.too_many_entries",
            Self::UnsafePath { .. } => "war.unsafe_path",
            Self::TooLarge { .. } => "war.too_large_uncompressed",
            Self::SuspiciousRatio { .. } => "war.compression_ratio",
            Self::SizeMismatch { .. } => "war.size_mismatch",
            Self::PlainJar => "war.plain_jar",
            Self::NoWebInf => "war.no_web_inf",
            Self::DirectoryTooLarge { .. } => "war.directory_too_large",
            Self::Nested { error, .. } => error.code(),
        }
    }
}

// What an inspection holds in memory is bounded by these, whatever the input declares:
// the parsed central directory (a few times its size on disk), one nested jar read
// whole with its own directory, and one entry's bytes at a time.
/// Nested jars larger than this are not opened for the namespace scan.
const MAX_NESTED_JAR: u64 = 8 << 20;
/// A central directory larger than this is refused before it is parsed (parsed, it
/// takes about 6 times as much: 65,536 entries with names of 50 bytes fit).
const MAX_DIRECTORY: u64 = 6 << 20;
/// The same for a nested jar's directory.
const MAX_NESTED_DIRECTORY: u64 = 2 << 20;
/// A web.xml larger than this is not read.
const MAX_WEB_XML: u64 = 1 << 20;
/// Classes larger than this are not read for the scan (none real comes near it).
const MAX_CLASS: u64 = 1 << 20;
/// Buffers start at most this big and grow with what is actually read.
const FIRST_BUFFER: u64 = 64 << 10;

pub fn inspect<R: Read + Seek>(reader: R, limits: &UploadConfig) -> Result<Inspection, InspectError> {
    let mut archive = open(reader, limits, MAX_DIRECTORY)?;

    let mut total: u64 = 0;
    let mut has_web_inf = false;
    let mut has_manifest = false;
    let mut web_xml = None;
    let mut services = Vec::new();
    let mut classes = Vec::new();
    let mut jars = Vec::new();
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(|e| InspectError::NotZip(e.to_string()))?;
        let name = entry.name().to_owned();
        if unsafe_path(&name) {
            return Err(InspectError::UnsafePath { name });
        }
        let size = entry.size();
        check_entry(&name, size, entry.compressed_size(), &mut total, limits)?;
        has_web_inf |= name.starts_with("WEB-INF/");
        has_manifest |= name == "META-INF/MANIFEST.MF";
        if name == "WEB-INF/web.xml" {
            web_xml = Some((index, size));
        } else if let Some(service) = name.strip_prefix("WEB-INF/classes/").filter(|n| n.starts_with("META-INF/services/")) {
            services.push(service.to_owned());
        } else if name.starts_with("WEB-INF/classes/") && name.ends_with(".class") && size <= MAX_CLASS {
            classes.push((index, size));
        } else if name.starts_with("WEB-INF/lib/") && name.ends_with(".jar") && size <= MAX_NESTED_JAR {
            jars.push((index, size));
        }
    }
    if !has_web_inf {
        return Err(if has_manifest { InspectError::PlainJar } else { InspectError::NoWebInf });
    }

    // web.xml first: it names the classes Tomcat will load.
    let mut evidence = Evidence::default();
    if let Some((index, size)) = web_xml.filter(|(_, size)| *size <= MAX_WEB_XML) {
        evidence.web_xml(&read_entry(&mut archive, index, size)?);
    }
    for service in services {
        evidence.library_entry("WEB-INF/classes", &service);
    }
    // The app's own classes first, then the libraries, while the budget lasts.
    let mut budget = limits.scan_class_bytes;
    for (index, size) in classes.into_iter().chain(jars) {
        if budget < size {
            break;
        }
        budget -= size;
        let bytes = read_entry(&mut archive, index, size)?;
        let name = archive.name_for_index(index).unwrap_or_default().to_owned();
        match name.strip_prefix("WEB-INF/classes/") {
            Some(path) => evidence.own_class(path, &bytes),
            None => scan_nested_jar(&name, bytes, &mut evidence, &mut budget, limits)?,
        }
    }
    let verdict = evidence.verdict();

    Ok(Inspection {
        entries: archive.len(),
        uncompressed_bytes: total,
        has_web_xml: web_xml.is_some(),
        servlet_api: verdict.api,
        servlet_api_source: verdict.source,
        servlet_api_evidence: verdict.evidence,
    })
}

/// Opens an archive once its end record says it is small enough to parse: entries
/// counted and the central directory's size checked before the zip reader loads it.
fn open<R: Read + Seek>(mut reader: R, limits: &UploadConfig, max_directory: u64) -> Result<ZipArchive<R>, InspectError> {
    let end = end_record(&mut reader)?;
    if end.entries > limits.max_entries as u64 {
        return Err(InspectError::TooManyEntries { count: end.entries, max: limits.max_entries });
    }
    if end.directory_bytes > max_directory {
        return Err(InspectError::DirectoryTooLarge { size: end.directory_bytes, max: max_directory });
    }
    let archive = ZipArchive::new(reader).map_err(|e| InspectError::NotZip(e.to_string()))?;
    if archive.len() > limits.max_entries {
        return Err(InspectError::TooManyEntries { count: archive.len() as u64, max: limits.max_entries });
    }
    Ok(archive)
}

/// The caps every entry's declared sizes are held to, read or not.
fn check_entry(name: &str, size: u64, compressed: u64, total: &mut u64, limits: &UploadConfig) -> Result<(), InspectError> {
    *total = total.saturating_add(size);
    if *total > limits.max_uncompressed_bytes {
        return Err(InspectError::TooLarge { total: *total, max: limits.max_uncompressed_bytes });
    }
    if size >= limits.ratio_min_entry_bytes {
        let ratio = size / compressed.max(1);
        if ratio > limits.max_compression_ratio {
            return Err(InspectError::SuspiciousRatio { name: name.to_owned(), ratio, max: limits.max_compression_ratio });
        }
    }
    Ok(())
}

/// Reads one entry whole, refusing one that inflates past its declared size. The
/// buffer grows with what is read, not with what the header declares.
fn read_entry<R: Read + Seek>(archive: &mut ZipArchive<R>, index: usize, size: u64) -> Result<Vec<u8>, InspectError> {
    let entry = archive.by_index(index).map_err(|e| InspectError::NotZip(e.to_string()))?;
    let name = entry.name().to_owned();
    let mut bytes = Vec::with_capacity(size.min(FIRST_BUFFER) as usize);
    entry
        .take(size + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| InspectError::NotZip(format!("entry {name:?}: {e}")))?;
    if bytes.len() as u64 > size {
        return Err(InspectError::SizeMismatch { name });
    }
    Ok(bytes)
}

/// A library jar is held to the WAR's own rules (entries, directory, sizes, ratios):
/// breaking them refuses the upload. One the zip reader cannot read just gives no
/// evidence: that is not the uploader's to fix here.
fn scan_nested_jar(name: &str, jar: Vec<u8>, evidence: &mut Evidence, budget: &mut u64, limits: &UploadConfig) -> Result<(), InspectError> {
    let nested = |error: InspectError| InspectError::Nested { jar: name.to_owned(), error: Box::new(error) };
    let mut archive = match open(std::io::Cursor::new(jar), limits, MAX_NESTED_DIRECTORY) {
        Ok(archive) => archive,
        Err(InspectError::NotZip(_)) => return Ok(()),
        Err(e) => return Err(nested(e)),
    };
    let mut total = 0;
    let mut classes = Vec::new();
    for index in 0..archive.len() {
        let Ok(entry) = archive.by_index_raw(index) else { continue };
        let (path, size) = (entry.name().to_owned(), entry.size());
        check_entry(&path, size, entry.compressed_size(), &mut total, limits).map_err(nested)?;
        if !path.ends_with(".class") {
            evidence.library_entry(name, &path);
        } else if size <= MAX_CLASS {
            classes.push((index, path, size));
        }
    }
    for (index, path, size) in classes {
        if *budget < size {
            continue;
        }
        *budget -= size;
        match read_entry(&mut archive, index, size) {
            Ok(bytes) => evidence.library_class(name, &path, &bytes),
            Err(e @ InspectError::SizeMismatch { .. }) => return Err(nested(e)),
            Err(_) => {}
        }
    }
    Ok(())
}

fn unsafe_path(name: &str) -> bool {
    name.starts_with('/')
        || name.contains('\\')
        || name.contains('\0')
        || name.as_bytes().get(1) == Some(&b':')
        || name.split('/').any(|part| part == "..")
}

/// What the end-of-central-directory record declares.
struct EndRecord {
    entries: u64,
    directory_bytes: u64,
}

/// Entry count and directory size from the end-of-central-directory record (zip64 aware).
fn end_record<R: Read + Seek>(reader: &mut R) -> Result<EndRecord, InspectError> {
    const EOCD: [u8; 4] = [0x50, 0x4b, 0x05, 0x06];
    const ZIP64_LOCATOR: [u8; 4] = [0x50, 0x4b, 0x06, 0x07];
    const ZIP64_EOCD: [u8; 4] = [0x50, 0x4b, 0x06, 0x06];
    let io = |e: std::io::Error| InspectError::NotZip(e.to_string());
    let len = reader.seek(SeekFrom::End(0)).map_err(io)?;
    let tail_len = len.min(22 + 65_535);
    reader.seek(SeekFrom::Start(len - tail_len)).map_err(io)?;
    let mut tail = vec![0; tail_len as usize];
    reader.read_exact(&mut tail).map_err(io)?;
    let at = memchr::memmem::rfind(&tail, &EOCD)
        .filter(|at| at + 22 <= tail.len())
        .ok_or_else(|| InspectError::NotZip("no end-of-archive record: truncated, or not a zip at all".into()))?;
    let entries = u16::from_le_bytes([tail[at + 10], tail[at + 11]]);
    let directory_bytes = u32::from_le_bytes(tail[at + 12..at + 16].try_into().expect("4 bytes"));
    let classic = EndRecord { entries: u64::from(entries), directory_bytes: u64::from(directory_bytes) };
    if entries != u16::MAX && directory_bytes != u32::MAX {
        return Ok(classic);
    }
    // zip64: the locator sits just before the classic record and points at the zip64 one.
    let locator = at.checked_sub(20).filter(|l| tail[*l..*l + 4] == ZIP64_LOCATOR);
    let Some(locator) = locator else { return Ok(classic) };
    let offset = u64::from_le_bytes(tail[locator + 8..locator + 16].try_into().expect("8 bytes"));
    let mut record = [0u8; 56];
    reader.seek(SeekFrom::Start(offset)).map_err(io)?;
    reader.read_exact(&mut record).map_err(io)?;
    if record[..4] != ZIP64_EOCD {
        return Err(InspectError::NotZip("corrupt zip64 end record".into()));
    }
    Ok(EndRecord {
        entries: u64::from_le_bytes(record[32..40].try_into().expect("8 bytes")),
        directory_bytes: u64::from_le_bytes(record[40..48].try_into().expect("8 bytes")),
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use zip::write::SimpleFileOptions;
    use zip::CompressionMethod;

    use super::*;

    fn limits() -> UploadConfig {
        UploadConfig::default()
    }

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, SimpleFileOptions::default()).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn run(bytes: Vec<u8>) -> Result<Inspection, InspectError> {
        inspect(Cursor::new(bytes), &limits())
    }

    #[test]
    fn classes_outrank_a_stale_web_xml() {
        let war = zip_of(&[
            ("WEB-INF/web.xml", b"<web-app xmlns=\"http://java.sun.com/xml/ns/j2ee\" version=\"2.4\"/>"),
            ("WEB-INF/classes/Hello.class", b"\xca\xfe\xba\xbe...jakarta/servlet/http/HttpServlet..."),
        ]);
        let facts = run(war).unwrap();
        assert_eq!(facts.servlet_api, ServletApi::Jakarta);
        assert_eq!(facts.servlet_api_source, EvidenceSource::Classes);
        assert!(facts.has_web_xml);
    }

    #[test]
    fn libraries_then_web_xml_when_no_classes() {
        let lib = zip_of(&[("org/x/Filter.class", b"..javax/servlet/Filter..")]);
        let war = zip_of(&[("WEB-INF/lib/x.jar", &lib), ("index.jsp", b"<p/>")]);
        let facts = run(war).unwrap();
        assert_eq!((facts.servlet_api, facts.servlet_api_source), (ServletApi::Javax, EvidenceSource::Libraries));
        assert!(!facts.has_web_xml);

        let war = zip_of(&[("WEB-INF/web.xml", b"<web-app xmlns=\"https://jakarta.ee/xml/ns/jakartaee\"/>")]);
        let facts = run(war).unwrap();
        assert_eq!((facts.servlet_api, facts.servlet_api_source), (ServletApi::Jakarta, EvidenceSource::WebXml));

        let war = zip_of(&[("WEB-INF/jsp/a.jsp", b"<p/>")]);
        assert_eq!(run(war).unwrap().servlet_api, ServletApi::Unknown);
    }

    #[test]
    fn both_namespaces_is_mixed() {
        let war = zip_of(&[
            ("WEB-INF/classes/A.class", b"javax/servlet/Servlet"),
            ("WEB-INF/classes/B.class", b"jakarta/servlet/Servlet"),
        ]);
        assert_eq!(run(war).unwrap().servlet_api, ServletApi::Mixed);
    }

    #[test]
    fn refuses_what_is_not_a_war() {
        assert!(matches!(run(b"just text".to_vec()), Err(InspectError::NotZip(_))));
        assert!(matches!(run(Vec::new()), Err(InspectError::NotZip(_))));
        let war = zip_of(&[("WEB-INF/web.xml", b"<web-app/>"), ("WEB-INF/classes/A.class", &[7; 4000])]);
        assert!(matches!(run(war[..war.len() / 2].to_vec()), Err(InspectError::NotZip(_))));
        assert_eq!(run(zip_of(&[("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n")])), Err(InspectError::PlainJar));
        assert_eq!(run(zip_of(&[("index.html", b"<p/>")])), Err(InspectError::NoWebInf));
    }

    #[test]
    fn refuses_escaping_entries() {
        for name in ["../evil.jsp", "WEB-INF/../../x", "/etc/passwd", "C:/x", "a\\..\\b"] {
            let war = zip_of(&[("WEB-INF/web.xml", b"<web-app/>"), (name, b"x")]);
            assert_eq!(run(war), Err(InspectError::UnsafePath { name: name.into() }), "{name}");
        }
    }

    #[test]
    fn refuses_zip_bombs() {
        let zeros = vec![0u8; 4 << 20];
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.start_file("WEB-INF/web.xml", SimpleFileOptions::default()).unwrap();
        w.start_file("WEB-INF/bomb.bin", SimpleFileOptions::default().compression_method(CompressionMethod::Deflated)).unwrap();
        w.write_all(&zeros).unwrap();
        let bomb = w.finish().unwrap().into_inner();
        assert!(matches!(run(bomb.clone()), Err(InspectError::SuspiciousRatio { .. })));

        let mut tight = limits();
        tight.max_compression_ratio = u64::MAX;
        tight.max_uncompressed_bytes = 1 << 20;
        assert!(matches!(inspect(Cursor::new(bomb), &tight), Err(InspectError::TooLarge { .. })));

        let many: Vec<(String, &[u8])> = (0..20).map(|i| (format!("WEB-INF/{i}"), &b""[..])).collect();
        let many: Vec<(&str, &[u8])> = many.iter().map(|(n, d)| (n.as_str(), *d)).collect();
        let mut few = limits();
        few.max_entries = 10;
        assert_eq!(
            inspect(Cursor::new(zip_of(&many)), &few),
            Err(InspectError::TooManyEntries { count: 20, max: 10 })
        );
    }

    #[test]
    fn libraries_are_held_to_the_wars_own_rules() {
        // Too many entries in a library: refused before its directory is parsed.
        let names: Vec<String> = (0..20).map(|i| format!("x/{i}.properties")).collect();
        let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
        let war = zip_of(&[("WEB-INF/web.xml", b"<web-app/>"), ("WEB-INF/lib/many.jar", &zip_of(&entries))]);
        let mut few = limits();
        few.max_entries = 10;
        let refused = inspect(Cursor::new(war), &few).unwrap_err();
        assert_eq!(refused.code(), "war.too_many_entries");
        assert_eq!(refused.to_string(), "in WEB-INF/lib/many.jar: the archive has 20 entries, more than the 10 allowed");

        // A bomb inside a library: refused like one in the WAR.
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.start_file("bomb.bin", SimpleFileOptions::default().compression_method(CompressionMethod::Deflated)).unwrap();
        w.write_all(&vec![0u8; 4 << 20]).unwrap();
        let bomb = w.finish().unwrap().into_inner();
        let war = zip_of(&[("WEB-INF/web.xml", b"<web-app/>"), ("WEB-INF/lib/bomb.jar", &bomb)]);
        let refused = run(war).unwrap_err();
        assert_eq!(refused.code(), "war.compression_ratio");
        assert!(refused.to_string().starts_with("in WEB-INF/lib/bomb.jar: entry \"bomb.bin\""), "{refused}");

        // A library that is not a zip at all gives no evidence, and no refusal.
        let war = zip_of(&[("WEB-INF/web.xml", b"<web-app/>"), ("WEB-INF/lib/junk.jar", b"not a zip")]);
        assert_eq!(run(war).unwrap().servlet_api, ServletApi::Unknown);
    }

    #[test]
    fn a_directory_too_large_to_parse_is_refused_before_it_is() {
        let long = "n".repeat(1000);
        let names: Vec<String> = (0..9_000).map(|i| format!("WEB-INF/{long}{i}")).collect();
        let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
        let refused = run(zip_of(&entries)).unwrap_err();
        assert_eq!(refused.code(), "war.directory_too_large");
        assert!(refused.to_string().contains("more than the 6291456 allowed"), "{refused}");
    }
}
