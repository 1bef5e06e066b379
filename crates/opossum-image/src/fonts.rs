//! The fonts SVG text is drawn with: a configured directory, never the machine's whole font
//! list. Two workers with different system fonts would store different bytes under one key;
//! with a configured set (the same directory shipped in the same image everywhere) and its
//! [`FontSet::identity`] in every key's processing version, equal keys mean equal fonts.
//!
//! The identity is a digest of the files' contents, which every process needs before its first
//! key: about 10 MB of DejaVu read and hashed, a third of what `opossum process` spends on a
//! small image. [`FontSet::from_dir_remembered`] keeps each file's digest in a memo beside the
//! process's data (as git's index keeps its files' hashes), with the file's size, inode and
//! change times; a file whose stat still matches is not read again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use resvg::usvg::fontdb;
use sha2::{Digest, Sha256};

/// Where the Docker image's fonts are (Debian's `fonts-dejavu-core`): the default set.
pub const DEFAULT_FONTS_DIR: &str = "/usr/share/fonts/truetype/dejavu";

/// A font set and its identity. The identity (a digest of the files) is computed when the set
/// is made; the fonts are parsed on the first SVG render that needs them, so a process that
/// never renders text keeps no font tables (and no heap of small allocations) around.
#[derive(Clone)]
pub struct FontSet {
    files: Arc<[PathBuf]>,
    database: Arc<OnceLock<Arc<fontdb::Database>>>,
    identity: Arc<str>,
    faces: usize,
    dir: Option<Arc<Path>>,
}

impl FontSet {
    /// No fonts: SVG text is not drawn. Its identity is `none`.
    pub fn empty() -> FontSet {
        FontSet {
            files: Arc::new([]),
            database: Arc::new(OnceLock::new()),
            identity: "none".into(),
            faces: 0,
            dir: None,
        }
    }

    /// The fonts in `dir` and below, loaded once per process and directory (loading costs
    /// milliseconds per font). A missing or empty directory gives an empty set whose identity
    /// is `none`, so [`FontSet::is_empty`] tells the caller to warn.
    pub fn from_dir(dir: &Path) -> FontSet {
        FontSet::from_dir_remembered(dir, None)
    }

    /// [`FontSet::from_dir`], with each file's digest kept in the file `memo` (created or
    /// rewritten as needed; one that cannot be read or written is only slower). The identity
    /// is the same with or without it.
    pub fn from_dir_remembered(dir: &Path, memo: Option<&Path>) -> FontSet {
        static LOADED: OnceLock<Mutex<Vec<(PathBuf, FontSet)>>> = OnceLock::new();
        let loaded = LOADED.get_or_init(Mutex::default);
        if let Ok(loaded) = loaded.lock()
            && let Some((_, set)) = loaded.iter().find(|(d, _)| d == dir)
        {
            return set.clone();
        }
        let set = FontSet::load(dir, memo);
        if let Ok(mut loaded) = loaded.lock() {
            loaded.push((dir.to_path_buf(), set.clone()));
        }
        set
    }

    fn load(dir: &Path, memo: Option<&Path>) -> FontSet {
        let mut files = Vec::new();
        collect_files(dir, &mut files);
        files.sort();
        let remembered = memo.map(Memo::read).unwrap_or_default();
        let mut seen = Memo::default();
        let mut fonts = Vec::new();
        let mut faces = 0;
        let mut digest = Sha256::new();
        for file in files {
            let name = file.strip_prefix(dir).unwrap_or(&file);
            let stamp = Stamp::of(&file);
            let known = stamp
                .as_ref()
                .and_then(|stamp| remembered.find(name, stamp))
                .copied();
            let Some(font) = known.or_else(|| FontFile::read(&file)) else {
                continue; // unreadable
            };
            if let Some(stamp) = stamp {
                seen.0.insert(name.to_path_buf(), (stamp, font));
            }
            if font.faces == 0 {
                continue; // not a font
            }
            digest.update((name.as_os_str().len() as u64).to_le_bytes());
            digest.update(name.as_os_str().as_encoded_bytes());
            digest.update(font.size.to_le_bytes());
            digest.update(font.contents);
            faces += font.faces;
            fonts.push(file);
        }
        if let Some(memo) = memo
            && seen != remembered
        {
            seen.write(memo);
        }
        if fonts.is_empty() {
            return FontSet {
                dir: Some(dir.into()),
                ..FontSet::empty()
            };
        }
        FontSet {
            files: fonts.into(),
            database: Arc::new(OnceLock::new()),
            identity: const_hex_prefix(&digest.finalize()).into(),
            faces,
            dir: Some(dir.into()),
        }
    }

    /// A short digest of the font files (names and contents), or `none` for an empty set:
    /// what keys carry, so a change of fonts is a change of keys.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// True when the set has no font (SVG text is not drawn).
    pub fn is_empty(&self) -> bool {
        self.faces == 0
    }

    /// Font faces in the set.
    pub fn faces(&self) -> usize {
        self.faces
    }

    /// The directory the set was loaded from, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The parsed fonts, loaded on first use.
    pub(crate) fn database(&self) -> Arc<fontdb::Database> {
        self.database
            .get_or_init(|| {
                let mut database = fontdb::Database::new();
                for file in self.files.iter() {
                    // A file that changed since the identity was taken is still loaded as it
                    // is now; the identity is the deployment's, checked once at start.
                    let _ = database.load_font_file(file);
                }
                choose_generic_families(&mut database);
                Arc::new(database)
            })
            .clone()
    }
}

impl Default for FontSet {
    /// The fonts in [`DEFAULT_FONTS_DIR`].
    fn default() -> FontSet {
        FontSet::from_dir(Path::new(DEFAULT_FONTS_DIR))
    }
}

impl PartialEq for FontSet {
    fn eq(&self, other: &FontSet) -> bool {
        self.identity == other.identity
    }
}

impl std::fmt::Debug for FontSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FontSet")
            .field("dir", &self.dir)
            .field("faces", &self.faces)
            .field("identity", &self.identity)
            .finish()
    }
}

/// What the identity needs of one file: its size, the digest of its contents and its faces (0:
/// not a font).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FontFile {
    size: u64,
    contents: [u8; 32],
    faces: usize,
}

impl FontFile {
    /// Reads `file` once, for both the digest and a count of its faces (fontdb is built without
    /// memory mapping: it would read the whole file itself). The probe is then dropped: the set
    /// keeps only paths until a render asks for the fonts.
    fn read(file: &Path) -> Option<FontFile> {
        let data = std::fs::read(file).ok()?;
        let (size, contents) = (data.len() as u64, Sha256::digest(&data).into());
        let mut probe = fontdb::Database::new();
        probe.load_font_data(data);
        Some(FontFile {
            size,
            contents,
            faces: probe.len(),
        })
    }
}

/// A file's stat, as git's index keeps it: a file whose stamp is unchanged is taken to have
/// unchanged contents. Any write moves the change time (which no tool sets back), a replaced
/// file has another inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    modified_ns: i128,
    changed_ns: i128,
    inode: u64,
    device: u64,
}

impl Stamp {
    /// The stamp of `file`, or `None` where it cannot be trusted: no stat, not a Unix file
    /// system, or changed within the last second (a write in the same clock tick would leave
    /// the stamp as it is on a file system with coarse times).
    #[cfg(unix)]
    fn of(file: &Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(file).ok()?;
        let ns = |secs: i64, nanos: i64| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
        let changed_ns = ns(meta.ctime(), meta.ctime_nsec());
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_nanos() as i128;
        if now_ns - changed_ns < 1_000_000_000 {
            return None;
        }
        Some(Stamp {
            size: meta.size(),
            modified_ns: ns(meta.mtime(), meta.mtime_nsec()),
            changed_ns,
            inode: meta.ino(),
            device: meta.dev(),
        })
    }

    #[cfg(not(unix))]
    fn of(_file: &Path) -> Option<Stamp> {
        None
    }
}

/// The memo: each file of the set (by its name under the directory) with the stamp it had
/// when read. One line a file: `size modified changed inode device faces sha256 name`.
#[derive(Debug, Default, PartialEq)]
struct Memo(HashMap<PathBuf, (Stamp, FontFile)>);

impl Memo {
    fn find(&self, name: &Path, stamp: &Stamp) -> Option<&FontFile> {
        self.0
            .get(name)
            .filter(|(known, _)| known == stamp)
            .map(|(_, font)| font)
    }

    /// The memo in `path`; an unreadable file or line is left out (read again).
    fn read(path: &Path) -> Memo {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        Memo(text.lines().filter_map(Memo::parse_line).collect())
    }

    fn parse_line(line: &str) -> Option<(PathBuf, (Stamp, FontFile))> {
        let mut fields = line.splitn(8, ' ');
        let mut next = || fields.next();
        let stamp = Stamp {
            size: next()?.parse().ok()?,
            modified_ns: next()?.parse().ok()?,
            changed_ns: next()?.parse().ok()?,
            inode: next()?.parse().ok()?,
            device: next()?.parse().ok()?,
        };
        let faces = next()?.parse().ok()?;
        let contents: [u8; 32] = const_hex::decode_to_array(next()?).ok()?;
        let name = PathBuf::from(next()?);
        let font = FontFile {
            size: stamp.size,
            contents,
            faces,
        };
        Some((name, (stamp, font)))
    }

    /// Writes the memo whole (a temporary file renamed over it, so a reader never sees half of
    /// one). Names that a line cannot hold (not UTF-8, or with a line break) are left out.
    fn write(&self, path: &Path) {
        let mut entries: Vec<_> = self.0.iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let mut text = String::new();
        for (name, (stamp, font)) in entries {
            let Some(name) = name.to_str().filter(|n| !n.contains(['\n', '\r'])) else {
                continue;
            };
            text.push_str(&format!(
                "{} {} {} {} {} {} {} {name}\n",
                stamp.size,
                stamp.modified_ns,
                stamp.changed_ns,
                stamp.inode,
                stamp.device,
                font.faces,
                const_hex::encode(font.contents)
            ));
        }
        let temporary = path.with_extension(format!("tmp.{}", std::process::id()));
        let written = path
            .parent()
            .is_some_and(|dir| std::fs::create_dir_all(dir).is_ok())
            && std::fs::write(&temporary, text).is_ok()
            && std::fs::rename(&temporary, path).is_ok();
        if !written {
            let _ = std::fs::remove_file(&temporary);
        }
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => collect_files(&path, out),
            Ok(kind) if kind.is_file() => out.push(path),
            _ => {}
        }
    }
}

/// Generic families (`sans-serif`, `serif`, `monospace`) resolve inside the set, by name,
/// so a document asking for `sans-serif` gets the set's sans face and not fontdb's default
/// name (`Arial`), which the set may not have.
fn choose_generic_families(database: &mut fontdb::Database) {
    let mut families: Vec<String> = database
        .faces()
        .filter_map(|face| face.families.first().map(|(name, _)| name.clone()))
        .collect();
    families.sort();
    families.dedup();
    let find = |wanted: &dyn Fn(&str) -> bool| families.iter().find(|f| wanted(f)).cloned();
    let first = families.first().cloned().unwrap_or_default();
    let mono = find(&|f| f.contains("Mono")).unwrap_or_else(|| first.clone());
    let serif = find(&|f| f.contains("Serif") && !f.contains("Sans") && !f.contains("Mono"))
        .unwrap_or_else(|| first.clone());
    let sans = find(&|f| f.contains("Sans") && !f.contains("Mono")).unwrap_or(first);
    database.set_monospace_family(mono);
    database.set_serif_family(serif);
    database.set_cursive_family(sans.clone());
    database.set_fantasy_family(sans.clone());
    database.set_sans_serif_family(sans);
}

fn const_hex_prefix(digest: &[u8]) -> String {
    const_hex::encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A TrueType font of the default set, to copy into a test's own directory.
    fn system_ttf() -> PathBuf {
        std::fs::read_dir(DEFAULT_FONTS_DIR)
            .ok()
            .and_then(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .find(|p| p.extension().is_some_and(|x| x == "ttf"))
            })
            .unwrap_or_else(|| {
                panic!("{DEFAULT_FONTS_DIR} has no .ttf: apt-get install fonts-dejavu-core")
            })
    }

    #[test]
    fn identity_follows_the_font_files_and_a_missing_directory_is_empty() {
        let missing = FontSet::from_dir(Path::new("/nonexistent/opossum-fonts"));
        assert!(missing.is_empty());
        assert_eq!(missing.identity(), "none");
        assert_eq!(missing, FontSet::empty());

        let dir = std::env::temp_dir().join(format!("opossum-fonts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("notes.txt"), b"not a font").unwrap();
        let only_text = FontSet::load(&dir, None);
        assert!(only_text.is_empty(), "a text file is not a font");

        let font = system_ttf();
        std::fs::copy(&font, dir.join("a.ttf")).unwrap();
        let one = FontSet::load(&dir, None);
        assert_eq!(one.faces(), 1);
        assert_eq!(one.identity().len(), 16);
        assert_eq!(
            FontSet::load(&dir, None).identity(),
            one.identity(),
            "deterministic"
        );
        std::fs::copy(&font, dir.join("b.ttf")).unwrap();
        let two = FontSet::load(&dir, None);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(two.faces(), 2);
        assert_ne!(
            two.identity(),
            one.identity(),
            "another file, another identity"
        );
    }

    #[test]
    fn a_memo_gives_the_same_identity_and_spares_reading_unchanged_files() {
        let base = std::env::temp_dir().join(format!("opossum-memo-{}", std::process::id()));
        let (dir, memo) = (base.join("fonts"), base.join("data/fonts.memo"));
        std::fs::create_dir_all(&dir).unwrap();
        let font = system_ttf();
        std::fs::copy(&font, dir.join("a.ttf")).unwrap();
        std::fs::write(dir.join("notes.txt"), b"not a font").unwrap();
        // A stamp younger than a second is not trusted.
        std::thread::sleep(Duration::from_millis(1100));
        let plain = FontSet::load(&dir, None);
        assert_eq!(plain.faces(), 1);

        let first = FontSet::load(&dir, Some(&memo));
        assert_eq!(
            first.identity(),
            plain.identity(),
            "the memo changes no key"
        );
        let text = std::fs::read_to_string(&memo).expect("the memo is written");
        assert_eq!(text.lines().count(), 2, "{text}");

        // The second load takes the digest from the memo, not the file: a wrong one shows.
        let hex: String = format!("{:x}", Sha256::digest(std::fs::read(&font).unwrap()));
        assert!(text.contains(&hex), "{text}");
        std::fs::write(&memo, text.replace(&hex, &"0".repeat(64))).unwrap();
        assert_ne!(
            FontSet::load(&dir, Some(&memo)).identity(),
            plain.identity()
        );

        // A file written again is read again, whatever the memo says, and the memo is mended.
        std::fs::copy(&font, dir.join("a.ttf")).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(
            FontSet::load(&dir, Some(&memo)).identity(),
            plain.identity()
        );
        assert!(std::fs::read_to_string(&memo).unwrap().contains(&hex));

        // A memo that is not one is read as empty.
        std::fs::write(&memo, "garbage\n1 2 3\n").unwrap();
        assert_eq!(
            FontSet::load(&dir, Some(&memo)).identity(),
            plain.identity()
        );
        let _ = std::fs::remove_dir_all(&base);
    }
}
