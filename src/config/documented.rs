//! Every configuration key is documented: in mailkey-milter.toml(5), with
//! its type and default, and in the README's configuration table. The keys
//! come from the configuration structs themselves (their serde form, in
//! which an unset `Option` is `null` rather than absent), not from a list
//! kept by hand, so a new key fails this test until it is documented.

use super::*;
use serde_json::Value;

/// A key: the tables it is in (`["guidance", "text_for"]`), its name, and
/// whether its table is an array of tables (`[[signing.domains]]`).
#[derive(Debug)]
struct Key {
    tables: Vec<String>,
    name: String,
    in_array: bool,
}

impl Key {
    fn dotted(&self) -> String {
        let mut parts = self.tables.clone();
        parts.push(self.name.clone());
        parts.join(".")
    }
}

/// Every key of the configuration. An array of tables contributes the keys
/// of its first element: the configuration walked has one of each.
fn keys() -> Vec<Key> {
    let mut config = Config::default();
    let text = "[[signing.domains]]\ndomain = \"example.org\"\nkey_file = \"/k.pem\"\n";
    let parsed = Config::parse(text, std::path::Path::new("t.toml")).expect("a signing entry");
    config.signing.domains = parsed.signing.domains;
    let value = serde_json::to_value(&config).expect("the configuration as JSON");
    let mut out = Vec::new();
    walk(&value, &mut Vec::new(), false, &mut out);
    out
}

fn walk(value: &Value, tables: &mut Vec<String>, in_array: bool, out: &mut Vec<Key>) {
    let Value::Object(map) = value else { return };
    for (name, v) in map {
        let element = match v {
            Value::Array(items) => items.first().filter(|i| i.is_object()),
            _ => None,
        };
        match (v, element) {
            (Value::Object(_), _) | (_, Some(_)) => {
                tables.push(name.clone());
                walk(element.unwrap_or(v), tables, element.is_some(), out);
                tables.pop();
            }
            _ => out.push(Key {
                tables: tables.clone(),
                name: name.clone(),
                in_array,
            }),
        }
    }
}

fn read(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The man page's sections: `(title, [(names, the .B line)])`, a title
/// being `[dns]`, `[[signing.domains]]` or `TOP-LEVEL PARAMETERS`.
type Sections = Vec<(String, Vec<(Vec<String>, String)>)>;

fn man_sections(page: &str) -> Sections {
    let mut sections: Sections = Vec::new();
    for line in page.lines() {
        if let Some(title) = line.strip_prefix(".SH ") {
            sections.push((title.trim().to_string(), Vec::new()));
        } else if let (Some(entry), Some((_, entries))) =
            (line.strip_prefix(".B "), sections.last_mut())
        {
            // `.B a\fR, \fPb \fR(type; default …)\fP`
            let names = entry.split(" \\fR(").next().unwrap_or_default();
            let names = names.split("\\fR, \\fP").map(|n| n.trim().to_string());
            entries.push((names.collect(), line.to_string()));
        }
    }
    sections
}

#[test]
fn every_key_is_in_the_man_page_with_type_and_default() {
    let sections = man_sections(&read("contrib/mailkey-milter.toml.5"));
    let entry = |title: &str, name: &str| {
        sections
            .iter()
            .filter(|(t, _)| t == title)
            .flat_map(|(_, entries)| entries)
            .find(|(names, _)| names.iter().any(|n| n == name))
            .map(|(_, line)| line.clone())
    };
    let keys = keys();
    assert!(keys.len() > 40, "{keys:?}");
    for key in keys {
        let title = match (&key.tables[..], key.in_array) {
            ([], _) => "TOP-LEVEL PARAMETERS".to_string(),
            (t, true) => format!("[[{}]]", t.join(".")),
            (t, false) => format!("[{}]", t.join(".")),
        };
        // A nested table may be documented in its parent's section
        // (`text_for.no_key` under [guidance]).
        let nested = key.tables.split_first().map(|(first, rest)| {
            let mut name = rest.to_vec();
            name.push(key.name.clone());
            (format!("[{first}]"), name.join("."))
        });
        let line = entry(&title, &key.name)
            .or_else(|| nested.and_then(|(t, n)| entry(&t, &n)))
            .unwrap_or_else(|| {
                panic!(
                    "`{}` is not documented in contrib/mailkey-milter.toml.5 (section {title})",
                    key.dotted()
                )
            });
        assert!(
            line.contains("default"),
            "`{}`: the entry gives no type and default: {line}",
            key.dotted()
        );
    }
}

#[test]
fn every_key_is_in_the_readme_configuration_table() {
    let readme = read("README.md");
    let start = readme
        .find("## Configuration")
        .expect("a Configuration section");
    let rows: Vec<&str> = readme[start..]
        .lines()
        .skip_while(|l| !l.starts_with("| key |"))
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert!(rows.len() > 20, "no configuration table: {rows:?}");
    // The backticked names of a row's first cell: `[table] key`, `key`;
    // a bare name after a `[table] key` is in that table too.
    let names = |row: &str| {
        let cell = row.split('|').nth(1).unwrap_or_default();
        let mut table = String::new();
        let mut out = Vec::new();
        for (i, quoted) in cell.split('`').enumerate() {
            if i % 2 == 0 {
                continue;
            }
            let (t, name) = match quoted.strip_prefix('[') {
                Some(rest) => rest.split_once("] ").unwrap_or(("", rest)),
                None => (table.as_str(), quoted),
            };
            table = t.trim_matches(['[', ']']).to_string();
            out.push(if table.is_empty() {
                name.to_string()
            } else {
                format!("{table}.{name}")
            });
        }
        out
    };
    for key in keys() {
        let dotted = key.dotted();
        // An array of tables is one row (`[signing] domains`) that names
        // the keys of its entries.
        let (row_key, mention) = if key.in_array {
            (key.tables.join("."), Some(key.name.as_str()))
        } else {
            (dotted.clone(), None)
        };
        let row = rows
            .iter()
            .find(|r| names(r).contains(&row_key))
            .unwrap_or_else(|| panic!("`{dotted}` has no row in the README's configuration table"));
        if let Some(name) = mention {
            assert!(row.contains(name), "`{dotted}` is not named in: {row}");
        }
    }
}
