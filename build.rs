//! Checks the vendored browser assets against their pinned sha256 sums before they are
//! compiled into the binary, so a changed or corrupted third-party file fails the build.

use sha2::{Digest, Sha256};
use std::path::Path;

fn main() {
    for (dir, files) in [
        ("web/vendor/graphiql", 4),
        ("web/vendor/markdown", 4),
        ("web/vendor/apidocs", 3),
    ] {
        check(Path::new(dir), files);
    }
}

/// Every file `dir/SHA256SUMS` lists must hash to its pinned sum, and it lists at least
/// `files` of them.
fn check(dir: &Path, files: usize) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS"))
        .unwrap_or_else(|e| panic!("cannot read {}/SHA256SUMS: {e}", dir.display()));
    let mut checked = 0;
    for line in sums.lines().filter(|l| !l.trim().is_empty()) {
        let (want, name) = line
            .split_once("  ")
            .unwrap_or_else(|| panic!("malformed SHA256SUMS line: {line}"));
        let bytes = std::fs::read(dir.join(name))
            .unwrap_or_else(|e| panic!("vendored asset {name} missing: {e}"));
        let got = hex::encode(Sha256::digest(&bytes));
        assert_eq!(
            got, want,
            "vendored asset {name} does not match its pinned sha256"
        );
        println!("cargo:rerun-if-changed={}", dir.join(name).display());
        checked += 1;
    }
    assert!(
        checked >= files,
        "{}/SHA256SUMS lists too few assets",
        dir.display()
    );
}
