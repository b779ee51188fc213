//! Docs that cannot drift (#22): the configuration and command references
//! are held against the code, both ways, so neither a new key or flag nor
//! a removed one goes unnoticed.
//!
//! - Configuration: what the daemon accepts is read from its configuration
//!   structs (their serde form, in which an unset `Option` is `null`, so
//!   present), never from a list kept by hand. Every table has its section
//!   in contrib/mailkey-milter.toml.5 and its rows in the README's
//!   configuration table, and every key those two document is one the
//!   daemon accepts. That every key is documented, with its type and
//!   default, is src/config/documented.rs (unit tests, same source).
//! - Commands: every flag `mailkey-milter --help` and `<command> --help`
//!   list is in contrib/mailkey-milter.8 — the binary's own in OPTIONS, a
//!   command's in that command's entry under COMMANDS — every command has
//!   an entry, and the page names no flag or command the binary lacks.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::process::{mailkey_blocking, succeeded};
use mailkey_milter::config::Config;
use serde_json::Value;
use std::{collections::BTreeSet, path::Path};

fn read(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// What the configuration accepts, dotted (`guidance.text_for.no_key`).
#[derive(Default)]
struct Accepted {
    /// Tables, arrays of tables included (`signing.domains`).
    tables: BTreeSet<String>,
    /// The arrays of tables (`[[signing.domains]]`).
    arrays: BTreeSet<String>,
    keys: BTreeSet<String>,
}

/// The configuration's tables and keys; an array of tables contributes the
/// keys of its one element.
fn accepted() -> Accepted {
    let text = "[[signing.domains]]\ndomain = \"example.org\"\nkey_file = \"/k.pem\"\n";
    let config = Config::parse(text, Path::new("docs.toml")).expect("a signing entry");
    let value = serde_json::to_value(&config).expect("the configuration as JSON");
    let mut out = Accepted::default();
    walk(&value, "", &mut out);
    assert!(out.keys.len() > 40 && out.tables.len() > 15, "too few keys");
    out
}

fn walk(value: &Value, table: &str, out: &mut Accepted) {
    let Value::Object(map) = value else { return };
    for (name, v) in map {
        let dotted = match table {
            "" => name.clone(),
            _ => format!("{table}.{name}"),
        };
        match v {
            Value::Object(_) => {
                out.tables.insert(dotted.clone());
                walk(v, &dotted, out);
            }
            Value::Array(items) if items.first().is_some_and(Value::is_object) => {
                out.tables.insert(dotted.clone());
                out.arrays.insert(dotted.clone());
                walk(&items[0], &dotted, out);
            }
            _ => {
                out.keys.insert(dotted);
            }
        }
    }
}

/// A roff page with `\-` read as a hyphen; `plain` also drops the font
/// changes (`\fB`, `\fI`, `\fR`, `\fP`).
fn man_page(file: &str, plain: bool) -> String {
    let mut text = read(file).replace("\\-", "-");
    if plain {
        for font in ["\\fB", "\\fI", "\\fR", "\\fP"] {
            text = text.replace(font, "");
        }
    }
    text
}

/// A man page's sections: (title, body).
fn sections(page: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in page.lines() {
        if let Some(title) = line.strip_prefix(".SH ") {
            out.push((title.trim().to_string(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// The table of a toml.5 section title: `Some("")` for the top level,
/// `Some("signing.domains")` for `[[signing.domains]]`, `None` for NAME,
/// EXAMPLE and the like.
fn section_table(title: &str) -> Option<String> {
    if title == "TOP-LEVEL PARAMETERS" {
        return Some(String::new());
    }
    let inner = title.strip_prefix('[')?.strip_suffix(']')?;
    Some(inner.trim_matches(['[', ']']).to_string())
}

/// The dotted keys a toml.5 section documents: its `.B name \fR(type;
/// default …)\fP` entries, several names split by `\fR, \fP`.
fn documented_keys(table: &str, body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix(".B "))
        .filter_map(|entry| entry.split_once(" \\fR(").map(|(names, _)| names))
        .flat_map(|names| names.split("\\fR, \\fP"))
        .map(|name| match table {
            "" => name.trim().to_string(),
            _ => format!("{table}.{}", name.trim()),
        })
        .collect()
}

#[test]
fn every_table_has_its_man_page_section_and_every_key_there_is_accepted() {
    let accepted = accepted();
    let page = man_page("contrib/mailkey-milter.toml.5", false);
    let sections: Vec<(String, String)> = sections(&page)
        .into_iter()
        .filter_map(|(title, body)| section_table(&title).map(|t| (t, body)))
        .collect();
    for table in &accepted.tables {
        // A nested table may be documented in its parent's section, which
        // names it (`[guidance.text_for]` under [guidance]).
        let parent = table.rsplit_once('.').map(|(p, _)| p).unwrap_or_default();
        let own = sections.iter().any(|(t, _)| t == table);
        let in_parent = sections
            .iter()
            .any(|(t, body)| t == parent && body.contains(&format!("[{table}]")));
        assert!(
            own || in_parent,
            "table [{table}] has no section in contrib/mailkey-milter.toml.5"
        );
    }
    for (table, body) in &sections {
        assert!(
            table.is_empty() || accepted.tables.contains(table),
            "contrib/mailkey-milter.toml.5 documents a table [{table}] the daemon refuses"
        );
        for key in documented_keys(table, body) {
            assert!(
                accepted.keys.contains(&key) || accepted.arrays.contains(&key),
                "contrib/mailkey-milter.toml.5 documents `{key}`, a key the daemon refuses"
            );
        }
    }
}

/// The README's configuration table: the dotted names of each row's first
/// cell, `` `[table] key` `` or `` `key` `` (a bare name after a `[table]
/// key` is in that table too).
fn readme_rows() -> Vec<Vec<String>> {
    let readme = read("README.md");
    let start = readme
        .find("## Configuration")
        .expect("a Configuration section");
    let rows: Vec<Vec<String>> = readme[start..]
        .lines()
        .skip_while(|l| !l.starts_with("| key |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|row| {
            let cell = row.split('|').nth(1).unwrap_or_default();
            let mut table = String::new();
            let mut names = Vec::new();
            for quoted in cell.split('`').skip(1).step_by(2) {
                let name = match quoted.strip_prefix('[') {
                    Some(rest) => {
                        let (t, name) = rest.split_once("] ").unwrap_or(("", rest));
                        table = t.to_string();
                        name
                    }
                    None => quoted,
                };
                names.push(match table.as_str() {
                    "" => name.to_string(),
                    t => format!("{t}.{name}"),
                });
            }
            names
        })
        .collect();
    assert!(rows.len() > 20, "no configuration table in README.md");
    rows
}

#[test]
fn every_table_has_readme_rows_and_every_key_there_is_accepted() {
    let accepted = accepted();
    let rows = readme_rows();
    let named: BTreeSet<&String> = rows.iter().flatten().collect();
    for table in &accepted.tables {
        let prefix = format!("{table}.");
        assert!(
            named.iter().any(|n| n.starts_with(&prefix) || *n == table),
            "table [{table}] has no row in the README's configuration table"
        );
    }
    for name in named {
        assert!(
            accepted.keys.contains(name) || accepted.arrays.contains(name),
            "the README's configuration table names `{name}`, a key the daemon refuses"
        );
    }
}

/// What `mailkey-milter PATH --help` lists: its commands (clap's own
/// `help` left out) and its flags, short and long.
struct Help {
    commands: Vec<String>,
    flags: Vec<String>,
}

fn help(path: &[&str]) -> Help {
    let args = [path, &["--help"]].concat();
    let text = succeeded(&format!("mailkey-milter {args:?}"), mailkey_blocking(&args));
    let mut help = Help {
        commands: Vec::new(),
        flags: Vec::new(),
    };
    let mut section = "";
    for line in text.lines() {
        if !line.starts_with(' ') {
            section = line;
            continue;
        }
        let mut words = line.split_whitespace();
        match section {
            "Commands:" => {
                let command = words.next().unwrap_or_default();
                if command != "help" {
                    help.commands.push(command.to_string());
                }
            }
            // `  -c, --config <CONFIG>  Configuration file …`
            "Options:" => help.flags.extend(
                words
                    .map(|w| w.trim_end_matches(','))
                    .take_while(|w| w.starts_with('-'))
                    .map(str::to_string),
            ),
            _ => {}
        }
    }
    help
}

/// Whether `text` names `flag` as a word (`--json`, not `--json-x`).
fn mentions(text: &str, flag: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-');
    text.match_indices(flag).any(|(at, _)| {
        !word(text[..at].chars().next_back()) && !word(text[at + flag.len()..].chars().next())
    })
}

/// The flags `text` names: `-x` and `--long-name` words.
fn flags_in(text: &str) -> BTreeSet<String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '-';
    text.split(|c: char| !word(c))
        .filter(|w| {
            w.strip_prefix("--").map_or(
                w.len() == 2 && w.starts_with('-') && w.as_bytes()[1].is_ascii_alphabetic(),
                |long| long.starts_with(|c: char| c.is_ascii_lowercase()),
            )
        })
        .map(str::to_string)
        .collect()
}

/// The COMMANDS entries of mailkey-milter.8: the command's words (`token
/// issue`) from the entry's first line, and the whole entry.
fn command_entries(body: &str) -> Vec<(String, String)> {
    body.split(".TP\n")
        .skip(1)
        .map(|entry| {
            let first = entry.lines().next().unwrap_or_default();
            let words = first.split_whitespace().skip(1); // `.B`, `.BI`
            let command: Vec<&str> = words
                .take_while(|w| {
                    !w.starts_with('-') && w.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                })
                .collect();
            (command.join(" "), entry.to_string())
        })
        .collect()
}

#[test]
fn every_flag_of_every_command_is_in_the_man_page_and_no_other() {
    let page = man_page("contrib/mailkey-milter.8", true);
    let sections = sections(&page);
    let body = |title: &str| {
        sections
            .iter()
            .find(|(t, _)| t == title)
            .map(|(_, b)| b.clone())
            .unwrap_or_else(|| panic!("mailkey-milter.8 has no {title} section"))
    };
    let (options, entries) = (body("OPTIONS"), command_entries(&body("COMMANDS")));

    let root = help(&[]);
    for flag in &root.flags {
        assert!(
            mentions(&options, flag),
            "`mailkey-milter {flag}` is not in mailkey-milter.8's OPTIONS"
        );
    }
    for flag in flags_in(&options) {
        assert!(
            root.flags.contains(&flag),
            "mailkey-milter.8's OPTIONS names {flag}, which the binary does not take"
        );
    }

    // Every command, depth first; one with commands of its own (`token`)
    // is documented by theirs.
    let mut pending: Vec<Vec<String>> = root.commands.iter().map(|c| vec![c.clone()]).collect();
    let mut seen = BTreeSet::new();
    while let Some(path) = pending.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let help = help(&args);
        if !help.commands.is_empty() {
            pending.extend(
                help.commands
                    .iter()
                    .map(|c| [path.clone(), vec![c.clone()]].concat()),
            );
            continue;
        }
        let name = path.join(" ");
        let entry = entries
            .iter()
            .find(|(command, _)| *command == name)
            .map(|(_, text)| text)
            .unwrap_or_else(|| {
                panic!("`mailkey-milter {name}` has no entry in mailkey-milter.8's COMMANDS")
            });
        // The binary's own flags (--config, --help) are in OPTIONS.
        for flag in help.flags.iter().filter(|f| !root.flags.contains(f)) {
            assert!(
                mentions(entry, flag),
                "`mailkey-milter {name} {flag}` is not in its entry in mailkey-milter.8"
            );
        }
        for flag in flags_in(entry) {
            assert!(
                help.flags.contains(&flag),
                "mailkey-milter.8's entry for {name} names {flag}, which it does not take"
            );
        }
        seen.insert(name);
    }
    for (command, _) in &entries {
        assert!(
            seen.contains(command),
            "mailkey-milter.8 documents `{command}`, which the binary does not have"
        );
    }
}
