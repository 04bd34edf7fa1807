//! The built-in plugins, compiled into the binary by `build.rs`.

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

pub fn bytes(name: &str) -> Option<&'static [u8]> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

pub fn names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}
