//! Retrieval quality over public text: the module documentation of Python's standard library
//! (read from the machine's python3, not written for this test), one document per module.
//! Questions name what a module does in other words; each must find its module among the
//! first three hits, and hybrid ranking must do at least as well as each single ranking.

use crate::both_backends;
use crate::documents::{search, settled, upload_ok};
use crate::support::{Backend, TestServer};
use serde_json::{json, Value};

/// Prints `[{name, doc}]`: module docstrings of at least 150 characters.
const EXTRACT: &str = r#"
import ast, json, os
base = os.path.dirname(os.__file__)
out = []
for root, dirs, files in os.walk(base):
    dirs[:] = [d for d in dirs if d not in ("test", "tests", "idlelib", "site-packages", "lib2to3", "tkinter", "turtledemo", "__pycache__")]
    for f in sorted(files):
        if not f.endswith(".py"):
            continue
        path = os.path.join(root, f)
        rel = os.path.relpath(path, base)[:-3].replace(os.sep, ".")
        name = rel[:-9] if rel.endswith(".__init__") else rel
        if name.startswith("_") or "._" in name:
            continue
        try:
            doc = ast.get_docstring(ast.parse(open(path, encoding="utf-8").read()))
        except Exception:
            continue
        if doc and len(doc) >= 150:
            out.append({"name": name, "doc": doc})
print(json.dumps(out))
"#;

/// Questions and the module that answers them.
const QUESTIONS: &[(&str, &str)] = &[
    (
        "parse command-line options and generate usage help",
        "argparse",
    ),
    (
        "serialize python objects to a byte stream and back",
        "pickle",
    ),
    ("guess the MIME type of a file from its name", "mimetypes"),
    ("priority queue implemented with a binary heap", "heapq"),
    (
        "create temporary files and directories securely",
        "tempfile",
    ),
    (
        "run a child program and connect to its input and output pipes",
        "subprocess",
    ),
    ("send an email message through an SMTP server", "smtplib"),
    (
        "generate secure random tokens for passwords and account authentication",
        "secrets",
    ),
    (
        "compare sequences and show the differences between two texts",
        "difflib",
    ),
    (
        "mean, median and standard deviation of numeric data",
        "statistics",
    ),
    ("universally unique identifiers", "uuid"),
    ("a framework for writing network servers", "socketserver"),
    (
        "measure how long a small snippet of code takes to execute",
        "timeit",
    ),
    (
        "compress and decompress data with the LZMA algorithm",
        "lzma",
    ),
    ("convert colors between RGB and HSV", "colorsys"),
    (
        "filename matching with shell wildcards like *.txt",
        "fnmatch",
    ),
    ("a general purpose event scheduler", "sched"),
    ("IMAP4 client for reading mail on a server", "imaplib"),
    ("read and write Apple property list files", "plistlib"),
    ("prompt for a password without echoing it", "getpass"),
    (
        "unit testing framework with test cases and suites",
        "unittest",
    ),
    ("interactive debugger for python programs", "pdb"),
    ("configuration file parser for INI files", "configparser"),
    ("persistent dictionary of pickled objects", "shelve"),
    (
        "check whether a crawler may fetch a URL according to robots.txt",
        "urllib.robotparser",
    ),
    ("read and write WAV sound files", "wave"),
    (
        "information about the operating system and hardware the program runs on",
        "platform",
    ),
];

fn corpus() -> Vec<(String, String)> {
    let out = std::process::Command::new("python3")
        .args(["-c", EXTRACT])
        .output()
        .expect("python3 (installed by scripts/setup.sh) extracts the corpus");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    docs.iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_string(),
                d["doc"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn hybrid_finds_the_right_module(backend: Backend) {
    let docs = corpus();
    assert!(docs.len() >= 50, "the corpus has {} documents", docs.len());
    let s = TestServer::start(backend).await;
    let u = s.user("reader").await;
    let t = json!({ "collection": "stdlib" });
    let mut ids = Vec::new();
    for (name, doc) in &docs {
        ids.push(
            upload_ok(
                &s,
                &u.access,
                &format!("{name}.txt"),
                doc.clone().into_bytes(),
                t.clone(),
            )
            .await,
        );
    }
    for id in &ids {
        assert_eq!(settled(&s, &u.access, id).await["status"], "INDEXED");
    }
    let names: std::collections::HashSet<&str> = docs.iter().map(|(n, _)| n.as_str()).collect();
    let asked: Vec<_> = QUESTIONS
        .iter()
        .filter(|(_, m)| names.contains(m))
        .collect();
    assert!(
        asked.len() >= 20,
        "only {} of the questions' modules are in this Python",
        asked.len()
    );
    let mut found = std::collections::BTreeMap::new();
    for mode in ["HYBRID", "VECTOR", "KEYWORD"] {
        let mut hits_at_3 = 0;
        let mut misses = Vec::new();
        for (q, module) in &asked {
            let hits = search(&s, &u.access, q, json!({ "mode": mode, "t": t, "k": 10 })).await;
            let mut seen = Vec::new();
            for h in &hits {
                let f = h["document"]["filename"].as_str().unwrap().to_string();
                if !seen.contains(&f) {
                    seen.push(f);
                }
            }
            if seen.iter().take(3).any(|f| f == &format!("{module}.txt")) {
                hits_at_3 += 1;
            } else {
                misses.push(format!(
                    "{q} -> {:?}",
                    seen.iter().take(3).collect::<Vec<_>>()
                ));
            }
        }
        eprintln!(
            "{backend:?} {mode}: {hits_at_3}/{} at 3; misses: {misses:#?}",
            asked.len()
        );
        found.insert(mode, hits_at_3);
    }
    let n = asked.len();
    assert!(found["HYBRID"] >= found["VECTOR"], "{found:?}");
    assert!(found["HYBRID"] >= found["KEYWORD"], "{found:?}");
    assert!(
        found["HYBRID"] * 10 >= n * 8,
        "hybrid finds at least 80% in the first three: {found:?} of {n}"
    );
}

both_backends!(hybrid_finds_the_right_module);
