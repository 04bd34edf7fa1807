//! Builds the built-in plugins (the `plugins/` workspace) for `wasm32-wasip2` so the
//! `warship` binary ships them, and records the wasmtime version for the
//! precompiled-plugin cache key.

use std::path::{Path, PathBuf};
use std::process::Command;

const BUILTINS: [&str; 6] = [
    "validator-default",
    "template-tomcat",
    "strategy-recreate",
    "strategy-rolling",
    "strategy-canary",
    "strategy-bluegreen",
];
const TARGET: &str = "wasm32-wasip2";

fn main() {
    let host = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = host.parent().unwrap();
    println!("cargo:rerun-if-changed={}", root.join("plugins").display());
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    println!("cargo:rerun-if-changed={}", root.join("Cargo.lock").display());

    println!("cargo:rustc-env=WASMTIME_VERSION={}", locked_version(root, "wasmtime"));

    require_target();
    let target_dir = root.join("target").join("plugins");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--locked", "--target", TARGET])
        .arg("--manifest-path")
        .arg(root.join("plugins").join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        // The outer build's flags and wrappers are for the host, not for wasm guests.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("running cargo for the built-in plugins");
    assert!(status.success(), "building the built-in plugins (plugins/) for {TARGET} failed; see the errors above");

    let out = target_dir.join(TARGET).join("release");
    let mut table = String::from("pub const BUILTIN: &[(&str, &[u8])] = &[\n");
    for name in BUILTINS {
        let wasm = out.join(format!("{}.wasm", name.replace('-', "_")));
        assert!(wasm.is_file(), "{} was not built", wasm.display());
        table.push_str(&format!("    ({name:?}, include_bytes!({:?})),\n", wasm.display().to_string()));
    }
    table.push_str("];\n");
    std::fs::write(PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("builtin_plugins.rs"), table).unwrap();

    embed_kit(root);
}

/// What `warship plugin new` writes: the project templates (`kit/`), the Rust SDK and
/// the rollout crate its simulator runs on, and the WIT the host speaks, as
/// (path from the repository root, text). Symlinks are followed, so the SDK's `wit`
/// link is written out as the files it points at.
fn embed_kit(root: &Path) {
    let mut files = Vec::new();
    for dir in ["kit", "crates/plugin-sdk", "crates/rollout", "wit/0.2.0"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
        collect(root, &root.join(dir), &mut files);
    }
    files.sort();
    let mut table = String::from("pub const KIT: &[(&str, &str)] = &[\n");
    for (relative, absolute) in files {
        table.push_str(&format!("    ({relative:?}, include_str!({absolute:?})),\n"));
    }
    table.push_str("];\n");
    std::fs::write(PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("kit_files.rs"), table).unwrap();
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // Build outputs and caches are not part of a project.
        if matches!(name.as_str(), "target" | "Cargo.lock" | "__pycache__" | "dist" | "vendor") {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if meta.is_dir() {
            collect(root, &path, out);
        } else {
            let relative = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.push((relative, path.display().to_string()));
        }
    }
}

/// Fails with the exact command to run when the wasm target is missing.
fn require_target() {
    let Ok(output) = Command::new("rustup").args(["target", "list", "--installed"]).output() else {
        return; // no rustup: let cargo say what is missing
    };
    let installed = String::from_utf8_lossy(&output.stdout);
    if !installed.lines().any(|l| l.trim() == TARGET) {
        panic!("the built-in plugins need the {TARGET} target; install it with:\n\n    rustup target add {TARGET}\n");
    }
}

fn locked_version(root: &Path, package: &str) -> String {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).expect("Cargo.lock");
    let marker = format!("name = \"{package}\"\nversion = \"");
    let start = lock.find(&marker).map(|i| i + marker.len()).expect("package in Cargo.lock");
    lock[start..].split('"').next().unwrap().to_owned()
}
