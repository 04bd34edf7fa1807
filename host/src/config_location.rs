//! Which platform.toml a command reads: `--config`, then `WARSHIP_CONFIG`, then
//! `platform.toml` in the working directory, then `/etc/warship/platform.toml` (where an
//! image or a package puts it). The first that is set, or that exists, wins.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub const SYSTEM_CONFIG: &str = "/etc/warship/platform.toml";

/// The file, and how it was found, in words for the log.
pub fn find(flag: Option<&Path>, env: Option<OsString>, exists: impl Fn(&Path) -> bool) -> Result<(PathBuf, &'static str), String> {
    if let Some(path) = flag {
        return Ok((path.to_owned(), "--config"));
    }
    if let Some(path) = env.filter(|v| !v.is_empty()) {
        return Ok((PathBuf::from(path), "WARSHIP_CONFIG"));
    }
    for (path, how) in [("platform.toml", "the working directory"), (SYSTEM_CONFIG, "the system-wide place")] {
        if exists(Path::new(path)) {
            return Ok((PathBuf::from(path), how));
        }
    }
    Err(format!(
        "no platform.toml: give --config FILE or set WARSHIP_CONFIG, or put one in the working directory or at {SYSTEM_CONFIG}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_then_the_environment_then_the_working_directory_then_etc() {
        let none = |_: &Path| false;
        let everywhere = |_: &Path| true;
        let only_etc = |p: &Path| p == Path::new(SYSTEM_CONFIG);
        let flag = Path::new("/srv/a.toml");
        assert_eq!(find(Some(flag), Some("b.toml".into()), everywhere).unwrap(), (flag.to_owned(), "--config"));
        assert_eq!(find(None, Some("b.toml".into()), everywhere).unwrap(), ("b.toml".into(), "WARSHIP_CONFIG"));
        assert_eq!(find(None, Some("".into()), everywhere).unwrap(), ("platform.toml".into(), "the working directory"));
        assert_eq!(find(None, None, only_etc).unwrap(), (SYSTEM_CONFIG.into(), "the system-wide place"));
        let said = find(None, None, none).unwrap_err();
        assert!(said.contains("--config") && said.contains("WARSHIP_CONFIG") && said.contains(SYSTEM_CONFIG), "{said}");
    }
}
