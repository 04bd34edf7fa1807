//! The platform an image is built for.

/// `os/architecture[/variant]`, as in `linux/amd64` or `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('/');
        let os = parts.next().filter(|s| !s.is_empty())?.to_owned();
        let architecture = parts.next().filter(|s| !s.is_empty())?.to_owned();
        let variant = parts.next().map(str::to_owned);
        parts.next().is_none().then_some(Self { os, architecture, variant })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_with_and_without_variant() {
        let p = Platform::parse("linux/amd64").unwrap();
        assert_eq!((p.os.as_str(), p.architecture.as_str(), p.variant), ("linux", "amd64", None));
        assert_eq!(Platform::parse("linux/arm64/v8").unwrap().to_string(), "linux/arm64/v8");
        assert!(Platform::parse("linux").is_none());
        assert!(Platform::parse("linux/arm64/v8/x").is_none());
    }
}
