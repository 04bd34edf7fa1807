//! What a WAR inspection costs in memory, whatever the upload declares: real WARs and
//! hostile ones (a directory near the cap, a library packed with entries, libraries at
//! the size they are still opened, classes up to the scan budget, a library with more
//! entries than allowed), each measured by a counting allocator on the inspecting thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Cursor, Write};
use std::path::Path;

use warship_host::config::UploadConfig;
use warship_host::wars::inspect::inspect;
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

use crate::support;

/// What one inspection may hold at its peak.
pub(crate) const PEAK_MAX: usize = 64 << 20;

/// Counts the bytes the current thread has allocated and not freed, while asked to.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static HELD: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let held = HELD.get() + delta;
            HELD.set(held);
            PEAK.set(PEAK.get().max(held));
        }
    });
}

// SAFETY: every call goes to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The peak of bytes held by this thread while `f` runs, above what it held before.
pub(crate) fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    HELD.set(0);
    PEAK.set(0);
    COUNTING.set(true);
    let out = f();
    COUNTING.set(false);
    (out, PEAK.get().max(0) as usize)
}

fn zip_of(entries: impl IntoIterator<Item = (String, Vec<u8>)>, method: CompressionMethod) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(name, SimpleFileOptions::default().compression_method(method)).unwrap();
        w.write_all(&data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Inspects `war` as an upload is inspected (from its file), returning the outcome
/// in words and the peak memory.
fn inspected(dir: &Path, name: &str, war: &[u8]) -> (String, usize) {
    let path = dir.join(name);
    std::fs::write(&path, war).unwrap();
    inspected_file(&path)
}

fn inspected_file(path: &Path) -> (String, usize) {
    let limits = UploadConfig::default();
    let file = std::fs::File::open(path).unwrap();
    let (outcome, peak) = peak_of(|| inspect(std::io::BufReader::new(file), &limits));
    let said = match outcome {
        Ok(facts) => format!("accepted: {} entries, {:?}", facts.entries, facts.servlet_api),
        Err(e) => format!("refused: {} ({e})", e.code()),
    };
    (said, peak)
}

#[test]
fn an_inspection_holds_under_64_mib_whatever_the_war_declares() {
    let dir = tempfile::tempdir().unwrap();
    let web_xml = || ("WEB-INF/web.xml".to_owned(), b"<web-app/>".to_vec());
    // Classes that do not compress (a zip bomb's ratio is refused before any is read).
    let class = |bytes: usize| {
        let mut body = b"\xca\xfe\xba\xbe jakarta/servlet/http/HttpServlet ".to_vec();
        let mut seed = bytes as u32 | 1;
        body.extend((body.len()..bytes).map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (seed >> 16) as u8
        }));
        body
    };
    // The worst the caps allow at once: a central directory just under its 6 MiB cap
    // (45,000 entries with long names) and a library at the largest size still opened
    // (8 MiB) whose own directory is just under its 2 MiB cap.
    let packed_jar = zip_of((0..34_000).map(|i| (format!("p/{i}.class"), class(120))), CompressionMethod::Stored);
    assert!(packed_jar.len() < 8 << 20, "{}", packed_jar.len());
    let long = "d".repeat(65);
    let directory = zip_of(
        [web_xml(), ("WEB-INF/lib/packed.jar".to_owned(), packed_jar.clone())]
            .into_iter()
            .chain((0..45_000).map(|i| (format!("WEB-INF/static/{long}/{i}.txt"), Vec::new()))),
        CompressionMethod::Stored,
    );
    // Libraries at their caps, several: one is read at a time.
    let packed = zip_of(
        std::iter::once(web_xml()).chain((0..4).map(|i| (format!("WEB-INF/lib/packed-{i}.jar"), packed_jar.clone()))),
        CompressionMethod::Stored,
    );
    // Classes of 1 MiB, the largest read: each is read and let go, so 40 hold no more than one.
    let classes = zip_of(
        std::iter::once(web_xml()).chain((0..40).map(|i| (format!("WEB-INF/classes/C{i}.class"), class(1 << 20)))),
        CompressionMethod::Stored,
    );
    // A library with more entries than allowed (80,000 of 65,536) inside 8 MiB.
    let crowded_jar = zip_of((0..80_000).map(|i| (format!("{i:x}"), Vec::new())), CompressionMethod::Stored);
    let crowded = zip_of([web_xml(), ("WEB-INF/lib/crowded.jar".to_owned(), crowded_jar)], CompressionMethod::Stored);

    let mut rows = Vec::new();
    for (name, war) in [("worst.war", &directory), ("packed.war", &packed), ("classes.war", &classes), ("crowded.war", &crowded)] {
        let (said, peak) = inspected(dir.path(), name, war);
        rows.push((name.to_owned(), war.len(), said, peak));
    }
    for fixture in ["jolokia-war-1.7.2.war", "jolokia-agent-war-2.0.0.war", "helloworld-webapp-2.34.war"] {
        let path = support::fixture(fixture);
        let (said, peak) = inspected_file(&path);
        rows.push((fixture.to_owned(), std::fs::metadata(&path).unwrap().len() as usize, said, peak));
    }
    for (name, size, said, peak) in &rows {
        println!("{name:<30} {:>7.1} MiB  peak {:>5.1} MiB  {said}", *size as f64 / 1048576.0, *peak as f64 / 1048576.0);
    }
    for (name, _, said, peak) in &rows {
        assert!(*peak < PEAK_MAX, "{name}: peak {peak} bytes ({said})");
    }
    let said = |name: &str| rows.iter().find(|r| r.0 == name).unwrap().2.clone();
    assert!(said("worst.war").starts_with("accepted: 45002 entries, Jakarta"), "{}", said("worst.war"));
    assert!(said("packed.war").starts_with("accepted"), "{}", said("packed.war"));
    assert!(said("classes.war").starts_with("accepted: 41 entries, Jakarta"), "{}", said("classes.war"));
    let crowded = said("crowded.war");
    assert!(crowded.starts_with("refused: war.too_many_entries (in WEB-INF/lib/crowded.jar: the archive has 80000 entries"), "{crowded}");
    // The counter counts: the largest real inspection holds something measurable.
    assert!(rows.iter().all(|r| r.3 > 0), "{rows:?}");
}
