//! `warship plugin build`: the project's own toolchain turns it into a component,
//! `dist/<name>.wasm`: cargo for Rust, componentize-py for Python. A missing tool is
//! answered with the one command that installs it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::project::{self, Manifest};
use super::{KitError, Lang};

/// The componentize-py the kit's Python SDK and templates were tested with.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
const TARGET: &str = "wasm32-wasip2";

/// Builds the project in `dir`; returns the component's path.
pub fn build(dir: &Path) -> Result<PathBuf, KitError> {
    let manifest = Manifest::read(dir)?;
    for written in project::vendor(dir, manifest.lang, false)? {
        eprintln!("wrote {written} (the kit's part of the project)");
    }
    let out = manifest.component(dir);
    std::fs::create_dir_all(out.parent().expect("dist/")).map_err(|e| KitError::io(dir, e))?;
    let started = Instant::now();
    match manifest.lang {
        Lang::Rust => build_rust(dir, &manifest, &out)?,
        Lang::Python => build_python(dir, &manifest, &out)?,
    }
    let size = std::fs::metadata(&out).map_err(|e| KitError::io(&out, e))?.len();
    eprintln!("built {} ({:.1} MiB) in {:.1} s", out.display(), size as f64 / 1048576.0, started.elapsed().as_secs_f64());
    Ok(out)
}

fn build_rust(dir: &Path, manifest: &Manifest, out: &Path) -> Result<(), KitError> {
    let cargo = std::env::var_os("CARGO").map(PathBuf::from).unwrap_or_else(|| "cargo".into());
    if Command::new(&cargo).arg("--version").output().is_err() {
        return Err(missing("cargo", "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh"));
    }
    if let Ok(listed) = Command::new("rustup").args(["target", "list", "--installed"]).output() {
        if !String::from_utf8_lossy(&listed.stdout).lines().any(|l| l.trim() == TARGET) {
            return Err(missing(&format!("the {TARGET} target"), &format!("rustup target add {TARGET}")));
        }
    }
    let status = Command::new(&cargo)
        .args(["build", "--release", "--target", TARGET])
        .current_dir(dir)
        // Not the caller's target triple, if it set one for itself.
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .map_err(|e| KitError::io(Path::new("cargo"), e))?;
    if !status.success() {
        return Err(KitError::Failed(format!("cargo build failed ({status}); see its errors above")));
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| dir.join("target"));
    let built = target_dir.join(TARGET).join("release").join(format!("{}.wasm", manifest.crate_name()));
    std::fs::copy(&built, out).map_err(|e| KitError::io(&built, e))?;
    Ok(())
}

fn build_python(dir: &Path, manifest: &Manifest, out: &Path) -> Result<(), KitError> {
    let tool = componentize_py()?;
    let tmp = out.with_extension("wasm.tmp");
    let mut command = Command::new(&tool);
    command
        .args(["--quiet", "-d", "wit", "-w", manifest.kind.as_str(), "componentize", "--stub-wasi", "app", "-o"])
        .arg(&tmp)
        .current_dir(dir);
    // The tool's own venv, so that no other active venv's packages end up in the component.
    if let Some(venv) = tool.parent().and_then(Path::parent).filter(|v| v.join("pyvenv.cfg").is_file()) {
        command.env("VIRTUAL_ENV", venv);
    }
    eprintln!("componentize-py: packing app.py and CPython into a component (about 15 s)");
    let status = command.status().map_err(|e| KitError::io(&tool, e))?;
    if !status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(KitError::Failed(format!("componentize-py failed ({status}); see its errors above")));
    }
    std::fs::rename(&tmp, out).map_err(|e| KitError::io(out, e))
}

/// componentize-py from PATH, or from $WARSHIP_COMPONENTIZE_PY.
fn componentize_py() -> Result<PathBuf, KitError> {
    let tool = std::env::var_os("WARSHIP_COMPONENTIZE_PY").map(PathBuf::from).unwrap_or_else(|| "componentize-py".into());
    let install = format!("python3 -m pip install componentize-py=={COMPONENTIZE_PY_VERSION}");
    let Ok(output) = Command::new(&tool).arg("--version").output() else {
        return Err(missing("componentize-py", &install));
    };
    let version = String::from_utf8_lossy(&output.stdout);
    if !version.contains(COMPONENTIZE_PY_VERSION) {
        eprintln!("note: {} is {}; the kit is tested with {COMPONENTIZE_PY_VERSION} ({install})", tool.display(), version.trim());
    }
    Ok(which(&tool).unwrap_or(tool))
}

fn which(tool: &Path) -> Option<PathBuf> {
    if tool.components().count() > 1 {
        return Some(tool.to_owned());
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(tool)).find(|p| p.is_file())
}

fn missing(what: &str, install: &str) -> KitError {
    KitError::Usage(format!("{what} is needed to build this plugin and was not found; install it with:\n\n    {install}\n"))
}
