//! WARs for the tests: real ones fetched by scripts/fixtures, ones compiled here with
//! `javac`, and ones built byte by byte for inputs no real WAR has.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Real WARs from Debian packages, fetched by scripts/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    let dir = std::env::var_os("WARSHIP_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/warship/fixtures"));
    let path = dir.join(name);
    assert!(path.is_file(), "{} is missing: run scripts/fixtures (scripts/test does)", path.display());
    path
}

/// A Jakarta EE WAR compiled here with `javac` against Tomcat 10's Servlet API: `/version`
/// (a servlet) answers `version <version>`, `/` a static page. Written to `dir`.
pub fn versioned_war(dir: &Path, version: &str) -> PathBuf {
    let servlet = format!(
        "import jakarta.servlet.annotation.WebServlet;\nimport jakarta.servlet.http.*;\n\
         @WebServlet(\"/version\")\npublic class Version extends HttpServlet {{\n\
         protected void doGet(HttpServletRequest q, HttpServletResponse r) throws java.io.IOException {{\n\
         r.setContentType(\"text/plain\"); r.getWriter().print(\"version {version}\"); }}\n}}\n"
    );
    compiled_war(
        dir,
        &format!("app-{version}"),
        &[("Version", &servlet)],
        &format!("<html><body>app {version}</body></html>"),
    )
}

/// A WAR as many real builds make it: the app's classes in a jar of their own under
/// `WEB-INF/lib` (none in `WEB-INF/classes`), beside `libraries` (real jars, e.g. from
/// Maven Central). `war` is one built here (`versioned_war`); written to `dir/<name>.war`.
pub fn repackaged_war(dir: &Path, war: &Path, name: &str, libraries: &[PathBuf]) -> PathBuf {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(war).unwrap()).unwrap();
    let (mut app, mut rest) = (Vec::new(), Vec::new());
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        match entry.name().strip_prefix("WEB-INF/classes/") {
            Some(class) => app.push((class.to_owned(), bytes)),
            None => rest.push((entry.name().to_owned(), bytes)),
        }
    }
    let app_jar = zip_of(&app.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect::<Vec<_>>());
    rest.push(("WEB-INF/lib/app.jar".into(), app_jar));
    for library in libraries {
        rest.push((
            format!("WEB-INF/lib/{}", library.file_name().unwrap().to_string_lossy()),
            std::fs::read(library).unwrap(),
        ));
    }
    let path = dir.join(format!("{name}.war"));
    std::fs::write(&path, zip_of(&rest.iter().map(|(n, b)| (n.as_str(), b.as_slice())).collect::<Vec<_>>())).unwrap();
    path
}

/// A WAR whose context cannot start: its listener throws, so Tomcat answers 404 at `/`.
pub fn failing_war(dir: &Path) -> PathBuf {
    let listener = "import jakarta.servlet.*;\nimport jakarta.servlet.annotation.WebListener;\n\
         @WebListener\npublic class Boom implements ServletContextListener {\n\
         public void contextInitialized(ServletContextEvent e) { throw new IllegalStateException(\"no database configured\"); }\n}\n";
    compiled_war(dir, "failing", &[("Boom", listener)], "<html><body>never served</body></html>")
}

/// `classes` (name, Java source) compiled with `javac --release 17` into `WEB-INF/classes`,
/// beside an `index.html`, as `dir/<name>.war`.
fn compiled_war(dir: &Path, name: &str, classes: &[(&str, &str)], index: &str) -> PathBuf {
    let work = dir.join(format!("src-{name}"));
    std::fs::create_dir_all(work.join("classes")).unwrap();
    let sources: Vec<PathBuf> = classes
        .iter()
        .map(|(class, source)| {
            let path = work.join(format!("{class}.java"));
            std::fs::write(&path, source).unwrap();
            path
        })
        .collect();
    let javac = Command::new("javac")
        .args(["--release", "17", "-cp"])
        .arg(fixture("servlet-api.jar"))
        .arg("-d")
        .arg(work.join("classes"))
        .args(&sources)
        .output()
        .expect("javac (Java 17) is installed");
    assert!(javac.status.success(), "javac: {}", String::from_utf8_lossy(&javac.stderr));
    let compiled: Vec<(String, Vec<u8>)> = classes
        .iter()
        .map(|(class, _)| {
            (
                format!("WEB-INF/classes/{class}.class"),
                std::fs::read(work.join(format!("classes/{class}.class"))).unwrap(),
            )
        })
        .collect();
    let mut entries: Vec<(&str, &[u8])> =
        compiled.iter().map(|(path, bytes)| (path.as_str(), bytes.as_slice())).collect();
    entries.push(("index.html", index.as_bytes()));
    let war = dir.join(format!("{name}.war"));
    std::fs::write(&war, zip_of(&entries)).unwrap();
    war
}

/// A zip built in memory, for inputs no real WAR has.
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A WAR of about `mib` MiB: a web.xml and incompressible filler, stored as is.
pub fn big_war(path: &std::path::Path, mib: usize) {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).large_file(true);
    w.start_file("WEB-INF/web.xml", stored).unwrap();
    w.write_all(br#"<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="6.0"/>"#).unwrap();
    w.start_file("WEB-INF/lib/filler.bin", stored).unwrap();
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..mib {
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut chunk);
        w.write_all(&chunk).unwrap();
    }
    w.finish().unwrap();
}
