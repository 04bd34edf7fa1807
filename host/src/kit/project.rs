//! A plugin project on disk: what `warship plugin new` writes (a template from `kit/`,
//! the manifest, the vendored SDK and WIT) and what `warship plugin build` reads back.
//! Everything it writes comes from the binary, so a project needs nothing from the
//! repository warship was built from.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{KitError, Kind, Lang};

include!(concat!(env!("OUT_DIR"), "/kit_files.rs"));

/// The manifest every project has: what `plugin build` builds.
pub const MANIFEST: &str = "warship-plugin.toml";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The plugin's name: the component is `dist/<name>.wasm`.
    pub name: String,
    pub kind: Kind,
    pub lang: Lang,
}

impl Manifest {
    pub fn read(dir: &Path) -> Result<Self, KitError> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => KitError::Usage(format!(
                "{} has no {MANIFEST}: run this in a plugin project (`warship plugin new` writes one), or pass --dir",
                dir.display()
            )),
            _ => KitError::io(&path, e),
        })?;
        toml::from_str(&text).map_err(|e| KitError::Usage(format!("{}: {e}", path.display())))
    }

    /// `two_at_a_time` for `two-at-a-time`: the Rust crate's (and its .wasm file's) name.
    pub fn crate_name(&self) -> String {
        self.name.replace('-', "_")
    }

    pub fn component(&self, dir: &Path) -> PathBuf {
        dir.join("dist").join(format!("{}.wasm", self.name))
    }
}

/// A plugin name: lower-case letters, digits and dashes, starting with a letter (it
/// becomes a crate name, a file name and a platform.toml name).
pub fn check_name(name: &str) -> Result<(), KitError> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(KitError::Usage(format!(
            "{name:?} is not a plugin name: use lower-case letters, digits and dashes, starting with a letter (e.g. two-at-a-time)"
        )))
    }
}

/// Writes a new project into `dir`, which must not exist or be empty; returns the
/// files written, relative to it.
pub fn create(dir: &Path, manifest: &Manifest) -> Result<Vec<String>, KitError> {
    check_name(&manifest.name)?;
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(KitError::Usage(format!("{} exists and is not empty; pick a new folder with --dir", dir.display())));
    }
    let template = format!("kit/{}/{}/", manifest.lang.as_str(), manifest.kind.as_str());
    let mut written = Vec::new();
    for (path, text) in KIT.iter().filter(|(path, _)| path.starts_with(&template)) {
        let relative = &path[template.len()..];
        let text = text.replace("{{name}}", &manifest.name).replace("{{crate_name}}", &manifest.crate_name());
        write(dir, relative, &text)?;
        written.push(relative.to_owned());
    }
    if written.is_empty() {
        return Err(KitError::Usage(format!("this warship has no {} template for a {}", manifest.lang.as_str(), manifest.kind.as_str())));
    }
    let text = toml::to_string(manifest).expect("a manifest serializes");
    write(dir, MANIFEST, &format!("# What `warship plugin build` builds: dist/{}.wasm.\n{text}", manifest.name))?;
    written.push(MANIFEST.to_owned());
    written.extend(vendor(dir, manifest.lang, true)?);
    written.sort();
    Ok(written)
}

/// What a project keeps of warship itself: for Rust the SDK crate and the rollout
/// crate its simulator runs on, for Python the WIT and the SDK package. Written when
/// missing (or always, with `all`); returns what was written.
pub fn vendor(dir: &Path, lang: Lang, all: bool) -> Result<Vec<String>, KitError> {
    let parts: &[(&str, &str)] = match lang {
        Lang::Rust => &[("crates/plugin-sdk/", "vendor/plugin-sdk/"), ("crates/rollout/", "vendor/rollout/")],
        Lang::Python => &[("wit/0.2.0/", "wit/"), ("kit/python-sdk/warship_plugin/", "warship_plugin/")],
    };
    let mut written = Vec::new();
    for (from, to) in parts {
        if !all && dir.join(to).exists() {
            continue;
        }
        for (path, text) in KIT.iter().filter(|(path, _)| path.starts_with(from)) {
            let relative = format!("{to}{}", &path[from.len()..]);
            write(dir, &relative, text)?;
            written.push(relative);
        }
    }
    Ok(written)
}

fn write(dir: &Path, relative: &str, text: &str) -> Result<(), KitError> {
    let path = dir.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| KitError::io(parent, e))?;
    }
    std::fs::write(&path, text).map_err(|e| KitError::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_make_crates_and_files_pass() {
        assert!(check_name("two-at-a-time").is_ok());
        assert!(check_name("canary2").is_ok());
        for bad in ["", "Two", "2fast", "a_b", "a-", "a b", "../x"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_kind_has_a_template_in_each_language_and_the_vendored_parts_are_embedded() {
        for lang in ["rust", "python"] {
            for kind in ["strategy", "validator", "template"] {
                let prefix = format!("kit/{lang}/{kind}/");
                assert!(KIT.iter().any(|(p, _)| p.starts_with(&prefix)), "no {prefix}");
            }
        }
        for needed in ["crates/plugin-sdk/Cargo.toml", "crates/plugin-sdk/wit/plugin.wit", "crates/rollout/Cargo.toml", "wit/0.2.0/plugin.wit"] {
            assert!(KIT.iter().any(|(p, _)| *p == needed), "{needed} is not embedded");
        }
    }

    #[test]
    fn a_project_is_written_whole_and_never_over_another() {
        let dir = std::env::temp_dir().join(format!("warship-kit-{}", std::process::id()));
        let manifest = Manifest { name: "two-at-a-time".into(), kind: Kind::Strategy, lang: Lang::Python };
        let written = create(&dir, &manifest).unwrap();
        for file in ["app.py", "test_app.py", "README.md", MANIFEST, "wit/plugin.wit", "warship_plugin/__init__.py"] {
            assert!(written.iter().any(|w| w == file), "{file} not in {written:?}");
        }
        assert_eq!(Manifest::read(&dir).unwrap(), manifest);
        let app = std::fs::read_to_string(dir.join("app.py")).unwrap();
        assert!(!app.contains("{{"), "placeholders left in app.py");
        assert!(matches!(create(&dir, &manifest), Err(KitError::Usage(m)) if m.contains("not empty")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
