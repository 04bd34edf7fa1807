//! Image references: `[registry/]repository[:tag][@sha256:…]`. A reference without a
//! registry host names a repository in a default registry (the push registry), so the
//! admin's catalog can say `warship/tomcat:10.1-jdk17`.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reference:?} is not an image reference: {reason}")]
pub struct ReferenceError {
    pub reference: String,
    pub reason: String,
}

/// Why `tag` cannot be an image tag, if it cannot.
pub fn tag_problem(tag: &str) -> Option<&'static str> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && tag.as_bytes()[0] != b'.'
        && tag.as_bytes()[0] != b'-';
    (!ok).then_some("a tag is up to 128 letters, digits, '.', '_' and '-', not starting with '.' or '-'")
}

impl ImageRef {
    pub fn parse(text: &str, default_registry: &str) -> Result<Self, ReferenceError> {
        let fail = |reason: &str| ReferenceError { reference: text.to_owned(), reason: reason.to_owned() };
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                let hex = digest.strip_prefix("sha256:").ok_or_else(|| fail("only sha256 digests are supported"))?;
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
                    return Err(fail("a digest is sha256: and 64 lowercase hex digits"));
                }
                (rest, Some(digest.to_owned()))
            }
            None => (text, None),
        };
        // A first component with a dot, a colon or `localhost` is a registry host.
        let (registry, path) = match rest.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => (first.to_owned(), path),
            _ => (default_registry.to_owned(), rest),
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_owned())),
            _ => (path, None),
        };
        if repository.is_empty() {
            return Err(fail("the repository is empty"));
        }
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.as_bytes()[0].is_ascii_alphanumeric()
                && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
        };
        if !repository.split('/').all(component_ok) {
            return Err(fail("repository components are lowercase letters, digits, '.', '_' and '-', separated by '/'"));
        }
        if let Some(problem) = tag.as_deref().and_then(tag_problem) {
            return Err(fail(problem));
        }
        Ok(Self { registry, repository: repository.to_owned(), tag, digest })
    }

    /// What to ask the registry for: the digest when known, else the tag.
    pub fn reference(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }

    /// `registry/repository:tag`.
    pub fn tagged(&self) -> String {
        format!("{}/{}:{}", self.registry, self.repository, self.tag.as_deref().unwrap_or("latest"))
    }

    /// `registry/repository@sha256:…`, the immutable form Kubernetes gets.
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}/{}@{digest}", self.registry, self.repository)
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "127.0.0.1:5000";

    #[test]
    fn short_names_live_in_the_default_registry() {
        let r = ImageRef::parse("warship/tomcat:10.1-jdk17", D).unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()), (D, "warship/tomcat", Some("10.1-jdk17")));
        assert_eq!(r.reference(), "10.1-jdk17");
        assert_eq!(r.tagged(), "127.0.0.1:5000/warship/tomcat:10.1-jdk17");
    }

    #[test]
    fn hosts_ports_and_digests() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("registry.example:443/team/app:1.0@{digest}"), D).unwrap();
        assert_eq!(r.registry, "registry.example:443");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.reference(), digest);
        assert_eq!(r.pinned(&digest), format!("registry.example:443/team/app@{digest}"));
        let r = ImageRef::parse("localhost/app", D).unwrap();
        assert_eq!((r.registry.as_str(), r.reference()), ("localhost", "latest"));
        assert_eq!(ImageRef::parse("localhost:5000/a/b:c", D).unwrap().to_string(), "localhost:5000/a/b:c");
    }

    #[test]
    fn bad_references_say_why() {
        for bad in ["", "Team/app", "app:", "app@sha256:abc", "app@md5:aa", "a//b", "app:-x", "-app"] {
            assert!(ImageRef::parse(bad, D).is_err(), "{bad}");
        }
    }
}
