//! The fonts SVG text is drawn with: a configured directory, never the machine's whole font
//! list. Two workers with different system fonts would store different bytes under one key;
//! with a configured set (the same directory shipped in the same image everywhere) and its
//! [`FontSet::identity`] in every key's processing version, equal keys mean equal fonts.

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
        static LOADED: OnceLock<Mutex<Vec<(PathBuf, FontSet)>>> = OnceLock::new();
        let loaded = LOADED.get_or_init(Mutex::default);
        if let Ok(loaded) = loaded.lock()
            && let Some((_, set)) = loaded.iter().find(|(d, _)| d == dir)
        {
            return set.clone();
        }
        let set = FontSet::load(dir);
        if let Ok(mut loaded) = loaded.lock() {
            loaded.push((dir.to_path_buf(), set.clone()));
        }
        set
    }

    fn load(dir: &Path) -> FontSet {
        let mut files = Vec::new();
        collect_files(dir, &mut files);
        files.sort();
        let mut fonts = Vec::new();
        let mut faces = 0;
        let mut digest = Sha256::new();
        for file in files {
            // Read once, for both the digest and a count of its faces (fontdb is built without
            // memory mapping: it would read the whole file itself). The probe is then dropped:
            // the set keeps only paths until a render asks for the fonts.
            let Ok(data) = std::fs::read(&file) else {
                continue; // unreadable
            };
            let (size, contents): (u64, [u8; 32]) =
                (data.len() as u64, Sha256::digest(&data).into());
            let mut probe = fontdb::Database::new();
            probe.load_font_data(data);
            if probe.is_empty() {
                continue; // not a font
            }
            let name = file.strip_prefix(dir).unwrap_or(&file);
            digest.update((name.as_os_str().len() as u64).to_le_bytes());
            digest.update(name.as_os_str().as_encoded_bytes());
            digest.update(size.to_le_bytes());
            digest.update(contents);
            faces += probe.len();
            fonts.push(file);
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
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_follows_the_font_files_and_a_missing_directory_is_empty() {
        let missing = FontSet::from_dir(Path::new("/nonexistent/opossum-fonts"));
        assert!(missing.is_empty());
        assert_eq!(missing.identity(), "none");
        assert_eq!(missing, FontSet::empty());

        let dir = std::env::temp_dir().join(format!("opossum-fonts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("notes.txt"), b"not a font").unwrap();
        let only_text = FontSet::load(&dir);
        assert!(only_text.is_empty(), "a text file is not a font");

        let system = Path::new(DEFAULT_FONTS_DIR);
        let Some(font) = std::fs::read_dir(system).ok().and_then(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "ttf"))
        }) else {
            let _ = std::fs::remove_dir_all(&dir);
            panic!("{DEFAULT_FONTS_DIR} has no .ttf: apt-get install fonts-dejavu-core");
        };
        std::fs::copy(&font, dir.join("a.ttf")).unwrap();
        let one = FontSet::load(&dir);
        assert_eq!(one.faces(), 1);
        assert_eq!(one.identity().len(), 16);
        assert_eq!(
            FontSet::load(&dir).identity(),
            one.identity(),
            "deterministic"
        );
        std::fs::copy(&font, dir.join("b.ttf")).unwrap();
        let two = FontSet::load(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(two.faces(), 2);
        assert_ne!(
            two.identity(),
            one.identity(),
            "another file, another identity"
        );
    }
}
