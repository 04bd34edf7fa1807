//! `WARSHIP__<SECTION>__<KEY>` overrides of platform.toml. A value is read as TOML when
//! it parses as a scalar or array, else taken as a plain string; and a value that reads
//! as a number or a boolean where the key wants a string (`WARSHIP__REGISTRY__PASSWORD=
//! 123456`) is given as the string it was.

use super::{Config, ConfigError, ENV_PREFIX};

pub enum Failed {
    Override(ConfigError),
    Invalid(String),
}

/// The config of `doc` with the overrides among `vars` applied.
pub fn apply(
    mut doc: toml::Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, Failed> {
    let mut read_as_toml = Vec::new();
    for (var, value) in vars {
        if let Some(rest) = var.strip_prefix(ENV_PREFIX) {
            let parsed = parse_override_value(&value);
            if !parsed.is_str() {
                read_as_toml.push((var.clone(), rest.to_owned(), value));
            }
            apply_override(&mut doc, &var, rest, parsed).map_err(Failed::Override)?;
        }
    }
    let mut failure = match into_config(&doc) {
        Ok(config) => return Ok(config),
        Err(message) => message,
    };
    // Give back as strings the values a key wanted as strings, one at a time, keeping
    // each change that moved the error on.
    for (var, rest, value) in read_as_toml {
        if !failure.contains("expected a string") {
            break;
        }
        let mut trial = doc.clone();
        apply_override(&mut trial, &var, &rest, toml::Value::String(value))
            .map_err(Failed::Override)?;
        match into_config(&trial) {
            Ok(config) => return Ok(config),
            Err(message) if message != failure => (doc, failure) = (trial, message),
            Err(_) => {}
        }
    }
    Err(Failed::Invalid(failure))
}

fn into_config(doc: &toml::Table) -> Result<Config, String> {
    toml::Value::Table(doc.clone())
        .try_into()
        .map_err(|e: toml::de::Error| e.to_string())
}

/// `WARSHIP__UPLOADS__MAX_BYTES=5` sets `uploads.max_bytes = 5`. The value is read as
/// TOML when it parses as a scalar or array, else taken as a plain string.
fn apply_override(
    doc: &mut toml::Table,
    var: &str,
    path: &str,
    value: toml::Value,
) -> Result<(), ConfigError> {
    let keys: Vec<String> = path.split("__").map(str::to_ascii_lowercase).collect();
    if keys.iter().any(String::is_empty) {
        return Err(ConfigError::Override {
            var: var.into(),
            message: "empty key segment".into(),
        });
    }
    let (leaf, sections) = keys
        .split_last()
        .expect("split yields at least one segment");
    let mut table = doc;
    for section in sections {
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry.as_table_mut().ok_or_else(|| ConfigError::Override {
            var: var.into(),
            message: format!("`{section}` is not a section"),
        })?;
    }
    table.insert(leaf.clone(), value);
    Ok(())
}

fn parse_override_value(value: &str) -> toml::Value {
    format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()))
}
