//! Loading a TOML config file the same way on both sides: strict parsing
//! (syntax errors, unknown keys and wrong types name their line), then a
//! semantic check; every problem is reported at once, each naming its key.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A config type that can say everything wrong with its values.
pub trait Checked: DeserializeOwned {
    /// Every problem, each starting with its key (`interval_secs: ...`).
    fn problems(&self) -> Vec<String>;
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {file}: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("{file}: {} problem(s):\n  {}", .problems.len(), .problems.join("\n  "))]
    Invalid { file: PathBuf, problems: Vec<String> },
}

pub fn load<T: Checked>(file: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.into(),
        source,
    })?;
    parse(&text, file)
}

/// Most problems listed for one file: past this many, the file is more
/// likely not a config of this kind at all.
const MAX_PROBLEMS: usize = 100;

/// Parses `text` as if read from `file` (the name goes into messages).
///
/// Every problem is listed at once, each with its key and line. serde stops
/// at the first error (an unknown key under `deny_unknown_fields`, a wrong
/// type), so the document is deserialized again with each offending key
/// taken out, until it deserializes or a problem cannot be taken out (a
/// missing key); `serde_path_to_error` names the key of each error, and the
/// parsed document's spans give its line. Then the values that deserialized
/// are checked too ([`Checked::problems`]).
pub fn parse<T: Checked>(text: &str, file: &Path) -> Result<T, ConfigError> {
    let parsed = toml_edit::ImDocument::parse(text).map_err(|e| ConfigError::Parse {
        file: file.into(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let mut doc = parsed.clone().into_mut();
    let mut problems = Vec::new();
    let mut reported: Vec<String> = Vec::new();
    let cfg = loop {
        let de = toml_edit::de::Deserializer::from(doc.clone());
        let e = match serde_path_to_error::deserialize::<_, T>(de) {
            Ok(cfg) => break Some(cfg),
            Err(e) => e,
        };
        let path: Vec<Segment> = e.path().iter().map(Segment::of).collect();
        let message = e.into_inner().message().to_string();
        // A missing key is reported at its table; it cannot be taken out.
        if let Some(field) = missing_field(&message) {
            let key = join(&path, Some(field));
            if !reported.contains(&key) {
                problems.push(with_line(&key, &message, line_of(&parsed, text, &path)));
            }
            break None;
        }
        let key = join(&path, None);
        problems.push(with_line(&key, &message, line_of(&parsed, text, &path)));
        reported.push(key);
        if problems.len() >= MAX_PROBLEMS || !remove(&mut doc, &path) {
            break None;
        }
    };
    if let Some(cfg) = &cfg {
        problems.extend(cfg.problems());
    }
    match cfg {
        Some(cfg) if problems.is_empty() => Ok(cfg),
        _ => Err(ConfigError::Invalid {
            file: file.into(),
            problems,
        }),
    }
}

/// One step of the path to a problem.
enum Segment {
    Key(String),
    Index(usize),
    Other,
}

impl Segment {
    fn of(s: &serde_path_to_error::Segment) -> Segment {
        match s {
            serde_path_to_error::Segment::Map { key } => Segment::Key(key.clone()),
            serde_path_to_error::Segment::Seq { index } => Segment::Index(*index),
            _ => Segment::Other,
        }
    }
}

/// `a.b[2].c`, with `field` appended when given.
fn join(path: &[Segment], field: Option<&str>) -> String {
    fn key(out: &mut String, k: &str) {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(k);
    }
    let mut out = String::new();
    for s in path {
        match s {
            Segment::Key(k) => key(&mut out, k),
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
            Segment::Other => {}
        }
    }
    if let Some(f) = field {
        key(&mut out, f);
    }
    if out.is_empty() { ".".into() } else { out }
}

fn with_line(key: &str, message: &str, line: Option<usize>) -> String {
    match line {
        Some(l) => format!("{key}: {message} (line {l})"),
        None => format!("{key}: {message}"),
    }
}

/// The field serde names in "missing field `name`".
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// The 1-based line of the deepest part of `path` the document locates.
fn line_of(doc: &toml_edit::ImDocument<&str>, text: &str, path: &[Segment]) -> Option<usize> {
    let mut item = doc.as_item();
    let mut at = None;
    for s in path {
        let next = match s {
            Segment::Key(k) => {
                let table = item.as_table_like()?;
                if let Some(span) = table.key(k).and_then(|k| k.span()) {
                    at = Some(span.start);
                }
                table.get(k)
            }
            Segment::Index(i) => {
                let next = item.get(*i);
                if let Some(span) = next.and_then(|n| n.span()) {
                    at = Some(span.start);
                }
                next
            }
            Segment::Other => None,
        };
        match next {
            Some(n) => item = n,
            None => break,
        }
    }
    at.map(|start| text.get(..start).map_or(0, |t| t.matches('\n').count()) + 1)
}

/// Takes the key the problem is about out of the document (the last key of
/// the path: an array element's problem takes its whole array out, so the
/// indexes of later problems still match the file). False when there is
/// nothing to take out.
fn remove(doc: &mut toml_edit::DocumentMut, path: &[Segment]) -> bool {
    let Some(last) = path.iter().rposition(|s| matches!(s, Segment::Key(_))) else {
        return false;
    };
    let mut item = doc.as_item_mut();
    for s in &path[..last] {
        let next = match s {
            Segment::Key(k) => item.as_table_like_mut().and_then(|t| t.get_mut(k)),
            Segment::Index(i) => item.get_mut(*i),
            Segment::Other => None,
        };
        match next {
            Some(n) => item = n,
            None => return false,
        }
    }
    match (&path[last], item.as_table_like_mut()) {
        (Segment::Key(k), Some(table)) => table.remove(k).is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        #[serde(default)]
        limit: u32,
        #[serde(default)]
        names: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        url: String,
        #[serde(default)]
        interval_secs: u32,
        #[serde(default)]
        inner: Option<Inner>,
        #[serde(default)]
        item: Vec<Inner>,
    }

    impl Checked for Cfg {
        fn problems(&self) -> Vec<String> {
            if self.interval_secs == 0 {
                vec!["interval_secs: must be at least 1".into()]
            } else {
                vec![]
            }
        }
    }

    fn problems(text: &str) -> Vec<String> {
        match parse::<Cfg>(text, Path::new("c.toml")) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn check_config_lists_every_unknown_key_not_only_the_first() {
        let p = problems(
            "url = \"x\"\nintervall_secs = 5\n[inner]\nlimt = 3\nnames = [\"a\", 2]\n[[item]]\nlimit = 1\n[[item]]\nlimitt = 2\n[bogus]\nq = 1\n",
        );
        assert_eq!(
            p,
            [
                "intervall_secs: unknown field `intervall_secs`, expected one of `url`, `interval_secs`, `inner`, `item` (line 2)",
                "inner.limt: unknown field `limt`, expected `limit` or `names` (line 4)",
                "inner.names[1]: invalid type: integer `2`, expected a string (line 5)",
                "item[1].limitt: unknown field `limitt`, expected `limit` or `names` (line 9)",
                "bogus: unknown field `bogus`, expected one of `url`, `interval_secs`, `inner`, `item` (line 10)",
                // The values that did deserialize are checked as well.
                "interval_secs: must be at least 1",
            ]
        );
        let e = parse::<Cfg>("url = \"x\"\nintervall_secs = 5\nfoo = 1\n", Path::new("c.toml")).unwrap_err();
        assert!(
            e.to_string().starts_with("c.toml: 3 problem(s):\n  intervall_secs: "),
            "{e}"
        );
    }

    #[test]
    fn a_missing_or_wrongly_typed_required_key_is_named_once() {
        assert_eq!(
            problems("interval_secs = 5\nfoo = 1\n"),
            [
                "foo: unknown field `foo`, expected one of `url`, `interval_secs`, `inner`, `item` (line 2)",
                "url: missing field `url`",
            ]
        );
        assert_eq!(
            problems("url = 5\ninterval_secs = 5\n"),
            ["url: invalid type: integer `5`, expected a string (line 1)"]
        );
    }

    #[test]
    fn a_good_file_and_a_syntax_error() {
        let c = parse::<Cfg>("url = \"x\"\ninterval_secs = 5\n", Path::new("c.toml")).unwrap();
        assert_eq!((c.url.as_str(), c.interval_secs), ("x", 5));
        let e = parse::<Cfg>("url = \"x\n", Path::new("c.toml")).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Parse { .. }) && e.to_string().contains("line 1"),
            "{e}"
        );
    }
}
