//! Reading backup files as a stream: one record at a time, whatever the file's size, with
//! errors that name the file, the line and column of a syntax error, and the position and
//! username of a bad record. Reads cbr's own files, the Go original's (`null` for an empty
//! pool) and the npm tools' (one with an inline `Groups` list per user).

use super::encoding::{Identities, open};
use super::record::UserRecord;
use anyhow::{Context, Result, anyhow, bail};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use std::fmt;
use std::io::Read;
use std::path::Path;

/// Calls `each` with every record of the file at `path`, in order, and returns the count.
/// `each` gets the record's 1-based position. Stops at the first error, from the file or from
/// `each`. Encrypted and compressed files are recognised by their first bytes.
pub fn for_each_record(
    path: &Path,
    identities: &Identities,
    mut each: impl FnMut(u64, UserRecord) -> Result<()>,
) -> Result<u64> {
    let reader = open(path, identities)?;
    read_records(reader, &mut each)
        .with_context(|| format!("{} is not a valid backup", path.display()))
}

/// Reads the records of a JSON array (or `null`) from `reader`.
pub fn read_records(
    reader: impl Read,
    each: &mut dyn FnMut(u64, UserRecord) -> Result<()>,
) -> Result<u64> {
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut visitor = RecordsVisitor {
        each,
        failure: None,
        started: false,
    };
    let result = (&mut de).deserialize_option(&mut visitor);
    if let Some(failure) = visitor.failure {
        return Err(failure);
    }
    let count = result.map_err(|e| match e.classify() {
        // A syntax error before the array opened: the file does not start as JSON.
        serde_json::error::Category::Syntax if !visitor.started => anyhow!(
            "not JSON (at line {} column {}): expected a JSON array of user records",
            e.line(),
            e.column()
        ),
        _ => describe_json_error(e),
    })?;
    de.end().map_err(describe_json_error)?;
    Ok(count)
}

fn describe_json_error(e: serde_json::Error) -> anyhow::Error {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => anyhow!(
            "the file ends too early at line {} column {} (truncated?)",
            e.line(),
            e.column()
        ),
        Category::Io => anyhow!("read error: {e}"),
        _ => anyhow!("{e}"),
    }
}

struct RecordsVisitor<'a> {
    each: &'a mut dyn FnMut(u64, UserRecord) -> Result<()>,
    failure: Option<anyhow::Error>,
    /// Whether the array opened.
    started: bool,
}

impl<'de> Visitor<'de> for &mut RecordsVisitor<'_> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of user records")
    }

    fn visit_none<E: de::Error>(self) -> Result<u64, E> {
        Ok(0)
    }

    fn visit_unit<E: de::Error>(self) -> Result<u64, E> {
        Ok(0)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_seq(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        self.started = true;
        let mut position = 0u64;
        while let Some(value) = seq.next_element::<serde_json::Value>()? {
            position += 1;
            let outcome = parse_record(position, value).and_then(|r| (self.each)(position, r));
            if let Err(e) = outcome {
                self.failure = Some(e);
                return Err(de::Error::custom("stopped"));
            }
        }
        Ok(position)
    }
}

/// Checks one record and names it in any error: its position, its username, the bad field.
pub fn parse_record(position: u64, value: serde_json::Value) -> Result<UserRecord> {
    let username = match value.get("Username") {
        Some(serde_json::Value::String(u)) if !u.is_empty() => u.clone(),
        Some(serde_json::Value::String(_)) => bail!("record {position} has an empty Username"),
        Some(other) if !other.is_null() => {
            bail!("record {position}: Username must be a string")
        }
        _ if !value.is_object() => bail!("record {position} is not a JSON object"),
        _ => bail!("record {position} has no Username"),
    };
    let record: UserRecord = serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        anyhow!(
            "record {position} (username {username:?}): field {field}: {}",
            e.into_inner()
        )
    })?;
    for attribute in &record.attributes {
        if attribute.name.is_empty() {
            bail!("record {position} (username {username:?}): an attribute has an empty Name");
        }
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<UserRecord>> {
        let mut out = Vec::new();
        read_records(text.as_bytes(), &mut |_, r| {
            out.push(r);
            Ok(())
        })?;
        Ok(out)
    }

    fn err(text: &str) -> String {
        format!("{:#}", read(text).unwrap_err())
    }

    #[test]
    fn reads_arrays_and_null() {
        assert!(read("null").unwrap().is_empty());
        assert!(read("[]").unwrap().is_empty());
        let users = read(
            r#"[{"Username":"a","Attributes":[{"Name":"sub","Value":"x"}],"Enabled":false,
                 "UserStatus":"CONFIRMED","Groups":["g1"]}]"#,
        )
        .unwrap();
        assert_eq!(users[0].username, "a");
        assert_eq!(users[0].sub(), Some("x"));
        assert!(!users[0].enabled);
        assert_eq!(users[0].groups(), ["g1"]);
    }

    #[test]
    fn missing_optional_fields_take_defaults() {
        let users = read(r#"[{"Username":"a","Attributes":null,"MFAOptions":null}]"#).unwrap();
        assert!(users[0].enabled);
        assert!(users[0].attributes.is_empty());
    }

    #[test]
    fn explains_bad_input() {
        assert!(err("{}").contains("expected a JSON array"), "{}", err("{}"));
        assert!(err("[{\"Username\":\"a\"").contains("truncated"));
        assert!(err("nope").contains("at line 1 column"), "{}", err("nope"));
        for not_json in ["nope", "id,email\na,b@c.d", "\u{1}\u{2}", "<html>"] {
            let e = err(not_json);
            assert!(e.starts_with("not JSON"), "{not_json:?}: {e}");
            assert!(!e.contains("expected value"), "{not_json:?}: {e}");
        }
        assert!(!err("[\n  {\"Username\": \"a\",,}]").contains("not JSON"));
        assert!(err("[\n  {\"Username\": \"a\",,}]").contains("line 2 column"));
        assert!(err("[{}]").contains("record 1 has no Username"));
        assert!(err("[1]").contains("record 1 is not a JSON object"));
        assert!(err(r#"[{"Username":7}]"#).contains("must be a string"));
        let e = err(r#"[{"Username":"a"},{"Username":"bob","Enabled":"yes"}]"#);
        assert!(
            e.contains("record 2 (username \"bob\"): field Enabled"),
            "{e}"
        );
        let e = err(r#"[{"Username":"c","Attributes":[{"Name":"email","Value":3}]}]"#);
        assert!(e.contains("Attributes[0].Value"), "{e}");
        assert!(err("[] []").contains("trailing"), "{}", err("[] []"));
    }

    const VALID: &str = r#"[{"Attributes":[{"Name":"sub","Value":"5e1c"},{"Name":"email","Value":"a@b.c"}],
        "Enabled":true,"MFAOptions":[{"AttributeName":"phone_number","DeliveryMedium":"SMS"}],
        "UserCreateDate":"2024-01-02T03:04:05.678Z","UserStatus":"CONFIRMED","Username":"a",
        "Groups":["g"]},{"Username":"b","Attributes":null,"MFAOptions":null}]"#;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any bytes: an error or records, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = read_records(&bytes[..], &mut |_, _| Ok(()));
        }

        /// A valid file with bytes changed, removed or cut short: never a panic, and anything
        /// accepted is a list of records with usernames.
        #[test]
        fn damaged_files_never_panic(
            edits in proptest::collection::vec((0usize..VALID.len(), proptest::prelude::any::<u8>()), 1..6),
            cut in 0usize..=VALID.len(),
        ) {
            let mut bytes = VALID.as_bytes().to_vec();
            for (at, b) in edits {
                let at = at % bytes.len();
                bytes[at] = b;
            }
            bytes.truncate(cut.max(1));
            let mut names = Vec::new();
            if read_records(&bytes[..], &mut |_, r| { names.push(r.username); Ok(()) }).is_ok() {
                proptest::prop_assert!(names.iter().all(|n| !n.is_empty()));
            }
        }
    }
}
