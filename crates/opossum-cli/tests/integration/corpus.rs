//! The corpus walk: every file in ../shared/corpus either becomes a valid thumbnail or fails
//! with one clear line; none panics, aborts, hangs or uses more than a few hundred MB.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use opossum_testkit::{TempDir, corpus};

use crate::support::run;

/// "A few hundred MB": the largest resident set any single run may reach.
const PEAK_RSS_LIMIT_KIB: i64 = 300 * 1024;
const DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, PartialEq)]
enum Expect {
    /// a real image that must decode
    Decodes,
    /// a file the corpus README says must be rejected
    Rejected,
    /// a damaged or fuzzed file: either outcome, as long as it is a clean one
    Either,
}

fn expectation(corpus: &Path, file: &Path) -> Expect {
    let relative = file
        .strip_prefix(corpus)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    if relative.starts_with("pngsuite/") {
        if name.starts_with('x') {
            Expect::Rejected
        } else {
            Expect::Decodes
        }
    } else if relative.starts_with("png-bugfixes/") && name.starts_with("x_") {
        Expect::Rejected
    } else if relative.starts_with("photos/") {
        Expect::Decodes
    } else {
        Expect::Either
    }
}

fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase());
                let is_doc = matches!(ext.as_deref(), Some("md" | "toml" | "txt"))
                    || path.file_name().is_some_and(|n| {
                        let n = n.to_string_lossy();
                        n.contains("LICENSE") || n.contains("README")
                    });
                if !is_doc {
                    files.push(path);
                }
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_corpus_file_decodes_or_fails_cleanly() {
    let corpus = corpus();
    let files = corpus_files(&corpus);
    assert!(files.len() > 300, "only {} corpus files found", files.len());
    let temp = TempDir::new("corpus");
    let out = temp.join("thumb.png");
    let out_arg = out.to_string_lossy().into_owned();
    let mut problems = Vec::new();
    let (mut decoded, mut rejected) = (0, 0);
    for file in &files {
        let expect = expectation(&corpus, file);
        let shown = file.strip_prefix(&corpus).unwrap().display().to_string();
        let _ = std::fs::remove_file(&out);
        let file_arg = file.to_string_lossy().into_owned();
        let args = [
            "process",
            &file_arg,
            "--ops",
            // Every canvas step and filter of the engine after the shrink, then back into
            // the 64 px box: none may panic or blow up on what the corpus holds.
            "thumbnail:64,trim,crop:0.9:0.9:smart,rotate:30:ffffff,pad:2:3,round:4,pixelate:2,\
             median:1,normalize,gamma:1.5,tint:ff8800,modulate:1:1.2:30,background:ffffff,\
             resize:64:64:contain,format:png",
            "--json",
            "--out",
            &out_arg,
        ];
        let run = match run(&args, DEADLINE) {
            Ok(run) => run,
            Err(e) => {
                problems.push(format!("{shown}: {e}"));
                continue;
            }
        };
        if let Some(signal) = run.status.signal() {
            problems.push(format!(
                "{shown}: killed by signal {signal}; stderr {:?}",
                run.stderr
            ));
            continue;
        }
        match run.status.code() {
            Some(0) => {
                decoded += 1;
                if expect == Expect::Rejected {
                    problems.push(format!("{shown}: must be rejected but decoded"));
                }
                let report = run.json();
                let (w, h) = (
                    report["width"].as_u64().unwrap(),
                    report["height"].as_u64().unwrap(),
                );
                let thumb = image::open(&out).map_err(|e| e.to_string());
                match thumb {
                    Ok(t)
                        if (u64::from(t.width()), u64::from(t.height())) == (w, h)
                            && w <= 64
                            && h <= 64
                            && w > 0
                            && h > 0 => {}
                    Ok(t) => problems.push(format!(
                        "{shown}: report {w}x{h}, file {}x{}",
                        t.width(),
                        t.height()
                    )),
                    Err(e) => problems.push(format!("{shown}: output does not decode: {e}")),
                }
            }
            Some(1) => {
                rejected += 1;
                if expect == Expect::Decodes {
                    problems.push(format!(
                        "{shown}: must decode but failed: {}",
                        run.stderr.trim()
                    ));
                }
                let lines: Vec<&str> = run.stderr.lines().collect();
                if lines.len() != 1 || !lines[0].starts_with("error: ") {
                    problems.push(format!(
                        "{shown}: error is not one `error: ` line: {:?}",
                        run.stderr
                    ));
                }
            }
            other => problems.push(format!("{shown}: exit {other:?}; stderr {:?}", run.stderr)),
        }
        let peak = peak_child_rss_kib();
        if peak > PEAK_RSS_LIMIT_KIB {
            problems.push(format!(
                "{shown}: peak resident memory reached {} MiB",
                peak / 1024
            ));
            break;
        }
    }
    eprintln!(
        "corpus walk: {} files, {decoded} decoded, {rejected} rejected cleanly, peak rss {} MiB",
        files.len(),
        peak_child_rss_kib() / 1024
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Largest resident set of any child this test process has waited for, in KiB.
fn peak_child_rss_kib() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map(|usage| usage.max_rss())
        .unwrap_or(0)
}
