//! Which servlet API a WAR needs (javax for Tomcat 9, jakarta for Tomcat 10 and newer),
//! decided by what Tomcat will actually load: the servlets, filters and listeners web.xml
//! declares, classes annotated `@WebServlet`, `@WebFilter` or `@WebListener` (in
//! `WEB-INF/classes` or a library), and the `ServletContainerInitializer` services
//! libraries register. Then the application's own classes; then references anywhere in
//! libraries, which are weak evidence (commons-logging 1.2 carries an optional
//! `javax.servlet` class that a Jakarta app never loads); then the web.xml schema, which
//! is often stale. The verdict says in words what decided it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServletApi {
    Javax,
    Jakarta,
    /// Both namespaces among what decided it: the app will not run cleanly on either Tomcat line.
    Mixed,
    /// No servlet reference found (e.g. JSP-only WARs): runs on either.
    Unknown,
}

/// Where the servlet API verdict came from, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EvidenceSource {
    /// What Tomcat loads: declared or annotated servlets, filters, listeners, and
    /// `ServletContainerInitializer` services.
    EntryPoints,
    /// `WEB-INF/classes`: the application's own code.
    Classes,
    /// Jars in `WEB-INF/lib`, anywhere in them.
    Libraries,
    /// Only the web.xml schema header said so.
    WebXml,
    None,
}

const JAVAX: &[u8] = b"javax/servlet/";
const JAKARTA: &[u8] = b"jakarta/servlet/";
/// Annotation descriptors Tomcat scans classes for, after either namespace's package.
const ANNOTATIONS: [(&[u8], &str); 3] =
    [(b"/servlet/annotation/WebServlet;", "@WebServlet"), (b"/servlet/annotation/WebFilter;", "@WebFilter"), (b"/servlet/annotation/WebListener;", "@WebListener")];
/// Entry points named in the words; the rest are counted.
const NAMED: usize = 3;

/// Which namespaces some bytes reference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Uses {
    javax: bool,
    jakarta: bool,
}

impl Uses {
    fn of(bytes: &[u8]) -> Self {
        Uses { javax: memchr::memmem::find(bytes, JAVAX).is_some(), jakarta: memchr::memmem::find(bytes, JAKARTA).is_some() }
    }

    fn join(self, other: Uses) -> Self {
        Uses { javax: self.javax || other.javax, jakarta: self.jakarta || other.jakarta }
    }

    fn api(self) -> Option<ServletApi> {
        match (self.javax, self.jakarta) {
            (false, false) => None,
            (true, false) => Some(ServletApi::Javax),
            (false, true) => Some(ServletApi::Jakarta),
            (true, true) => Some(ServletApi::Mixed),
        }
    }
}

fn words(api: ServletApi) -> &'static str {
    match api {
        ServletApi::Javax => "javax.servlet",
        ServletApi::Jakarta => "jakarta.servlet",
        ServletApi::Mixed => "both javax.servlet and jakarta.servlet",
        ServletApi::Unknown => "no servlet API",
    }
}

/// The verdict: the API, what kind of evidence decided it, and that evidence in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub api: ServletApi,
    pub source: EvidenceSource,
    pub evidence: String,
}

/// Evidence gathered while a WAR's entries are read; web.xml first (it names classes).
#[derive(Debug, Default)]
pub struct Evidence {
    /// Classes web.xml declares, as entry paths (`org/x/Hello.class`) → what they are.
    declared: BTreeMap<String, &'static str>,
    web_xml: Option<ServletApi>,
    /// What Tomcat loads, in words, and what it references.
    entry_points: Vec<(String, Uses)>,
    own: Uses,
    /// Library jar → what its classes reference.
    libraries: BTreeMap<String, Uses>,
}

impl Evidence {
    pub fn web_xml(&mut self, xml: &[u8]) {
        let text = String::from_utf8_lossy(xml);
        for (tag, what) in [("servlet-class", "servlet"), ("filter-class", "filter"), ("listener-class", "listener")] {
            let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
            let mut rest = text.as_ref();
            while let Some(start) = rest.find(&open) {
                rest = &rest[start + open.len()..];
                let Some(end) = rest.find(&close) else { break };
                let class = rest[..end].trim();
                if !class.is_empty() {
                    self.declared.insert(format!("{}.class", class.replace('.', "/")), what);
                }
                rest = &rest[end..];
            }
        }
        self.web_xml = web_xml_namespace(&text);
    }

    /// A class of `WEB-INF/classes`, at `path` below it.
    pub fn own_class(&mut self, path: &str, bytes: &[u8]) {
        let uses = Uses::of(bytes);
        self.own = self.own.join(uses);
        self.note_entry_point(path, bytes, uses, "WEB-INF/classes");
    }

    /// A class inside the library `jar` (`WEB-INF/lib/x.jar`).
    pub fn library_class(&mut self, jar: &str, path: &str, bytes: &[u8]) {
        let uses = Uses::of(bytes);
        let seen = self.libraries.entry(jar.to_owned()).or_default();
        *seen = seen.join(uses);
        self.note_entry_point(path, bytes, uses, jar);
    }

    /// Any other entry of a library (or of `WEB-INF/classes`, `jar` then naming it):
    /// a `ServletContainerInitializer` service file is something Tomcat starts.
    pub fn library_entry(&mut self, jar: &str, path: &str) {
        let uses = match path {
            "META-INF/services/javax.servlet.ServletContainerInitializer" => Uses { javax: true, jakarta: false },
            "META-INF/services/jakarta.servlet.ServletContainerInitializer" => Uses { javax: false, jakarta: true },
            _ => return,
        };
        self.entry_points.push((format!("a ServletContainerInitializer service in {jar}"), uses));
    }

    fn note_entry_point(&mut self, path: &str, bytes: &[u8], uses: Uses, place: &str) {
        let what = match self.declared.get(path) {
            Some(kind) => format!("{kind} in web.xml"),
            None => match ANNOTATIONS.iter().find(|(descriptor, _)| memchr::memmem::find(bytes, descriptor).is_some()) {
                Some((_, annotation)) => format!("annotated {annotation}"),
                None => return,
            },
        };
        let class = path.trim_end_matches(".class").replace('/', ".");
        self.entry_points.push((format!("{class} ({what}, {place})"), uses));
    }

    pub fn verdict(&self) -> Verdict {
        let entry = self.entry_points.iter().fold(Uses::default(), |all, (_, uses)| all.join(*uses));
        if let Some(api) = entry.api() {
            let deciding: Vec<&str> = self.entry_points.iter().filter(|(_, u)| u.api().is_some()).map(|(what, _)| what.as_str()).collect();
            let mut evidence = format!("{} by what Tomcat loads: {}", words(api), listed(&deciding));
            // Libraries that reference the other namespace: Tomcat never starts them.
            let only_in_libraries: Vec<&str> = self
                .libraries
                .iter()
                .filter(|(_, uses)| (uses.javax && !entry.javax) || (uses.jakarta && !entry.jakarta))
                .map(|(jar, _)| jar.as_str())
                .collect();
            if !only_in_libraries.is_empty() {
                let other = if entry.javax { "jakarta.servlet" } else { "javax.servlet" };
                evidence.push_str(&format!(
                    "; {other} appears only in libraries, where nothing Tomcat loads uses it (weak evidence, not counted): {}",
                    listed(&only_in_libraries)
                ));
            }
            return Verdict { api, source: EvidenceSource::EntryPoints, evidence };
        }
        if let Some(api) = self.own.api() {
            let evidence = format!("{} in the application's own classes (WEB-INF/classes)", words(api));
            return Verdict { api, source: EvidenceSource::Classes, evidence };
        }
        let libraries = self.libraries.values().fold(Uses::default(), |all, uses| all.join(*uses));
        if let Some(api) = libraries.api() {
            let jars: Vec<&str> = self.libraries.iter().filter(|(_, u)| u.api().is_some()).map(|(jar, _)| jar.as_str()).collect();
            let evidence = format!("{} in libraries only ({}): no servlet, filter or listener says which", words(api), listed(&jars));
            return Verdict { api, source: EvidenceSource::Libraries, evidence };
        }
        match self.web_xml {
            Some(api) => Verdict { api, source: EvidenceSource::WebXml, evidence: format!("only the web.xml schema says {}", words(api)) },
            None => Verdict { api: ServletApi::Unknown, source: EvidenceSource::None, evidence: "no servlet API reference found".into() },
        }
    }
}

/// "a, b, c and 2 more".
fn listed(items: &[&str]) -> String {
    let named = items[..items.len().min(NAMED)].join(", ");
    match items.len().saturating_sub(NAMED) {
        0 => named,
        more => format!("{named} and {more} more"),
    }
}

fn web_xml_namespace(text: &str) -> Option<ServletApi> {
    if text.contains("jakarta.ee/xml/ns/jakartaee") {
        Some(ServletApi::Jakarta)
    } else if ["java.sun.com/xml/ns/j2ee", "java.sun.com/xml/ns/javaee", "xmlns.jcp.org/xml/ns/javaee", "java.sun.com/dtd/web-app"]
        .iter()
        .any(|ns| text.contains(ns))
    {
        Some(ServletApi::Javax)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB_XML: &[u8] = b"<web-app xmlns=\"http://xmlns.jcp.org/xml/ns/javaee\">\
        <servlet><servlet-class> org.app.Agent </servlet-class></servlet>\
        <listener><listener-class>org.app.Boot</listener-class></listener></web-app>";

    #[test]
    fn a_servlet_web_xml_declares_decides_over_optional_references_in_libraries() {
        let mut e = Evidence::default();
        e.web_xml(WEB_XML);
        e.library_class("WEB-INF/lib/agent.jar", "org/app/Agent.class", b"..jakarta/servlet/http/HttpServlet..");
        e.library_class("WEB-INF/lib/agent.jar", "org/app/Util.class", b"..nothing..");
        e.library_class("WEB-INF/lib/commons-logging-1.2.jar", "org/apache/commons/logging/impl/ServletContextCleaner.class", b"..javax/servlet/ServletContextListener..");
        let v = e.verdict();
        assert_eq!((v.api, v.source), (ServletApi::Jakarta, EvidenceSource::EntryPoints));
        assert_eq!(
            v.evidence,
            "jakarta.servlet by what Tomcat loads: org.app.Agent (servlet in web.xml, WEB-INF/lib/agent.jar); \
             javax.servlet appears only in libraries, where nothing Tomcat loads uses it (weak evidence, not counted): \
             WEB-INF/lib/commons-logging-1.2.jar"
        );
    }

    #[test]
    fn annotations_and_initializer_services_are_entry_points_too() {
        let mut e = Evidence::default();
        e.own_class("org/app/Hello.class", b"..Ljavax/servlet/annotation/WebServlet;..javax/servlet/http/HttpServlet..");
        e.own_class("org/app/Plain.class", b"..jakarta/servlet/http/Cookie..");
        let v = e.verdict();
        assert_eq!((v.api, v.source), (ServletApi::Javax, EvidenceSource::EntryPoints), "{v:?}");
        assert!(v.evidence.contains("org.app.Hello (annotated @WebServlet, WEB-INF/classes)"), "{v:?}");

        let mut e = Evidence::default();
        e.library_entry("WEB-INF/lib/spring-web-5.3.jar", "META-INF/services/javax.servlet.ServletContainerInitializer");
        e.library_entry("WEB-INF/lib/other.jar", "META-INF/MANIFEST.MF");
        let v = e.verdict();
        assert_eq!((v.api, v.source), (ServletApi::Javax, EvidenceSource::EntryPoints));
        assert_eq!(v.evidence, "javax.servlet by what Tomcat loads: a ServletContainerInitializer service in WEB-INF/lib/spring-web-5.3.jar");
    }

    #[test]
    fn entry_points_of_both_namespaces_are_mixed() {
        let mut e = Evidence::default();
        e.web_xml(WEB_XML);
        e.own_class("org/app/Agent.class", b"jakarta/servlet/Servlet");
        e.own_class("org/app/Boot.class", b"javax/servlet/ServletContextListener");
        let v = e.verdict();
        assert_eq!((v.api, v.source), (ServletApi::Mixed, EvidenceSource::EntryPoints));
        assert!(v.evidence.starts_with("both javax.servlet and jakarta.servlet by what Tomcat loads: org.app.Agent"), "{v:?}");
    }

    #[test]
    fn without_entry_points_own_classes_then_libraries_then_the_schema_decide() {
        let mut e = Evidence::default();
        e.web_xml(b"<web-app xmlns=\"https://jakarta.ee/xml/ns/jakartaee\"/>");
        assert_eq!(e.verdict(), Verdict { api: ServletApi::Jakarta, source: EvidenceSource::WebXml, evidence: "only the web.xml schema says jakarta.servlet".into() });
        e.library_class("WEB-INF/lib/x.jar", "org/x/F.class", b"javax/servlet/Filter");
        assert_eq!((e.verdict().api, e.verdict().source), (ServletApi::Javax, EvidenceSource::Libraries));
        e.own_class("org/app/A.class", b"jakarta/servlet/http/HttpServletRequest");
        assert_eq!((e.verdict().api, e.verdict().source), (ServletApi::Jakarta, EvidenceSource::Classes));
        assert_eq!(Evidence::default().verdict().api, ServletApi::Unknown);
    }

    #[test]
    fn long_lists_are_cut_short() {
        assert_eq!(listed(&["a", "b", "c", "d", "e"]), "a, b, c and 2 more");
        assert_eq!(listed(&["a"]), "a");
    }
}
