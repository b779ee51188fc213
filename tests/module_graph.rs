//! No import cycle between the top-level modules of `src/` (issue #22,
//! ARCHITECTURE.md "Module graph"): every `crate::…` path in `src/**/*.rs`
//! (comments and string literals left out) is an edge from the file's
//! top-level module (`checks`, `dns`, `metrics`, …) to the module it names.
//! Items of the crate root (`lib.rs`: `Shared`, …), `super::`/`self::`
//! paths (which stay inside a module) and test code (`#[cfg(test)]` items,
//! and the files of `#[cfg(test)] mod x;`) are not edges: a unit test may
//! build its input from any module. A cycle fails the test, named edge by
//! edge with a file that makes each edge.

// Test code may unwrap: a panic is a failing test (clippy.toml allows it
// in #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// An edge `from → to`, with one `file:line` that makes it.
type Graph = BTreeMap<String, BTreeMap<String, String>>;

/// Modules that only the milter (and `main`, `lib.rs`) may import: they
/// sit on top and read the others, so nothing below reaches them.
const ON_TOP: [&str; 2] = ["metrics", "milter"];

#[test]
fn top_level_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    assert!(graph.len() > 10, "found only {:?} in src/", graph.keys());
    let cycles: Vec<String> = components(&graph)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| describe(&graph, &c))
        .collect();
    assert!(
        cycles.is_empty(),
        "import cycles between top-level modules of src/:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn metrics_and_milter_are_imported_by_nothing_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&src);
    let wrong: Vec<String> = graph
        .iter()
        .flat_map(|(from, edges)| edges.iter().map(move |(to, at)| (from, to, at)))
        .filter(|(from, to, _)| ON_TOP.contains(&to.as_str()) && !ON_TOP.contains(&from.as_str()))
        .map(|(from, to, at)| format!("{from} → {to}  ({at})"))
        .collect();
    assert!(
        wrong.is_empty(),
        "imports of the top:\n{}",
        wrong.join("\n")
    );
}

/// The checker sees a cycle that is there (so a pass means something).
#[test]
fn a_cycle_is_found() {
    let mut graph = Graph::new();
    let mut edge = |a: &str, b: &str| {
        graph
            .entry(a.into())
            .or_default()
            .insert(b.into(), format!("{a}.rs:1"));
        graph.entry(b.into()).or_default();
    };
    edge("checks", "dns");
    edge("dns", "metrics");
    edge("metrics", "checks");
    edge("metrics", "config");
    let cyclic: Vec<_> = components(&graph)
        .into_iter()
        .filter(|c| c.len() > 1)
        .collect();
    assert_eq!(cyclic, [vec!["checks", "dns", "metrics"]]);
    let text = describe(&graph, &cyclic[0]);
    assert!(text.contains("checks → dns"), "{text}");
    assert!(text.contains("metrics → checks"), "{text}");
}

#[test]
fn test_code_is_left_out() {
    let modules: BTreeSet<String> = ["checks", "dns"].map(String::from).into();
    let code = "use crate::checks;\n#[cfg(test)]\nmod tests {\n    use crate::dns;\n    fn f() { }\n}\n#[cfg(test)]\nmod more;\nfn g() { crate::dns::x() }";
    let found: Vec<(String, usize)> = crate_paths(&without_tests(code), &modules);
    assert_eq!(found, [("checks".into(), 1), ("dns".into(), 9)]);
    assert_eq!(test_modules(code), ["more"]);
}

#[test]
fn paths_are_read_from_use_groups_and_inline() {
    let modules: BTreeSet<String> = ["checks", "dns", "reply", "config"]
        .map(String::from)
        .into();
    let code = "use crate::{checks::{self, Code}, dns::Dns};\n\
                // crate::config is only a comment\n\
                let s = \"crate::config\"; let c = '\"';\n\
                fn f() -> crate::reply::Reply { crate::Shared::x() }";
    let found: Vec<String> = crate_paths(&strip(code), &modules)
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert_eq!(found, ["checks", "dns", "reply"]);
}

fn module_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let top = |file: &Path| -> Option<String> {
        let rel = file.strip_prefix(src).ok()?;
        let first = rel.components().next()?.as_os_str().to_str()?;
        let name = first.strip_suffix(".rs").unwrap_or(first);
        (name != "lib" && name != "main" && name != "bin").then(|| name.to_string())
    };
    let modules: BTreeSet<String> = files.iter().filter_map(|f| top(f)).collect();
    let mut test_files = BTreeSet::new();
    for file in &files {
        let Ok(text) = fs::read_to_string(file) else {
            panic!("cannot read {}", file.display())
        };
        // `#[cfg(test)] mod x;` in `a/b.rs` or `a/b/mod.rs`: `a/b/x.rs`.
        let dir = match file.file_stem().and_then(|s| s.to_str()) {
            Some("mod") => file.parent().map(Path::to_path_buf),
            _ => Some(file.with_extension("")),
        };
        for name in test_modules(&strip(&text)) {
            if let Some(dir) = &dir {
                test_files.insert(dir.join(format!("{name}.rs")));
                test_files.insert(dir.join(name).join("mod.rs"));
            }
        }
    }
    let mut graph: Graph = modules
        .iter()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    for file in &files {
        let Some(from) = top(file).filter(|_| !test_files.contains(file)) else {
            continue;
        };
        let Ok(text) = fs::read_to_string(file) else {
            panic!("cannot read {}", file.display())
        };
        let rel = file
            .strip_prefix(src.parent().unwrap_or(src))
            .unwrap_or(file);
        for (to, line) in crate_paths(&without_tests(&strip(&text)), &modules) {
            if to != from {
                let entry = graph.entry(from.clone()).or_default();
                entry
                    .entry(to)
                    .or_insert_with(|| format!("{}:{line}", rel.display()));
            }
        }
    }
    graph
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        panic!("cannot read {}", dir.display())
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `code` with comments and the contents of string and char literals
/// blanked (newlines kept, so line numbers stay right).
fn strip(code: &str) -> String {
    let c: Vec<char> = code.chars().collect();
    let mut out = String::with_capacity(code.len());
    let blank = |ch: char| if ch == '\n' { '\n' } else { ' ' };
    let at = |i: usize, k: usize| c.get(i + k).copied();
    let mut i = 0;
    while i < c.len() {
        if c[i] == '/' && at(i, 1) == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && at(i, 1) == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i, 1) == Some('*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i, 1) == Some('/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
        } else if c[i] == 'r' && matches!(at(i, 1), Some('"' | '#')) && raw_start(&c, i) {
            // A raw string: r"…", r#"…"#, br"…".
            let mut hashes = 0;
            let mut j = i + 1;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            j += 1;
            while j < c.len() {
                if c[j] == '"' && (1..=hashes).all(|k| c.get(j + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                out.push(blank(c[j]));
                j += 1;
            }
            i = j;
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                if let Some(&ch) = c.get(i) {
                    out.push(blank(ch));
                }
                i += 1;
            }
            i += 1;
        } else if c[i] == '\'' && (at(i, 1) == Some('\\') || at(i, 2) == Some('\'')) {
            // A char literal ('"', '\''), not a lifetime.
            i += 2;
            while i < c.len() && c[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// The names `NAME` of `#[cfg(test)] mod NAME;` in `code`.
fn test_modules(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        rest = &rest[at + "#[cfg(test)]".len()..];
        let item = rest.trim_start();
        let Some(decl) = item
            .strip_prefix("mod ")
            .or_else(|| item.strip_prefix("pub mod "))
        else {
            continue;
        };
        let name: String = decl
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if decl.trim_start()[name.len()..]
            .trim_start()
            .starts_with(';')
        {
            names.push(name);
        }
    }
    names
}

/// `code` without its `#[cfg(test)]` items (blanked up to the end of the
/// item: its `;` or its closing brace; newlines kept).
fn without_tests(code: &str) -> String {
    let c: Vec<char> = code.chars().collect();
    let marker: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut out: Vec<char> = c.clone();
    let mut i = 0;
    while i + marker.len() <= c.len() {
        if c[i..i + marker.len()] != marker[..] {
            i += 1;
            continue;
        }
        let mut j = i + marker.len();
        let mut depth = 0;
        while j < c.len() {
            match c[j] {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                ';' if depth == 0 => break,
                _ => {}
            }
            j += 1;
        }
        for ch in &mut out[i..j.min(c.len())] {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
        i = j + 1;
    }
    out.into_iter().collect()
}

/// Does the `r` at `i` start a raw string (not end an identifier)?
fn raw_start(c: &[char], i: usize) -> bool {
    match i.checked_sub(1).map(|p| c[p]) {
        Some('b') => !ident(i.checked_sub(2).and_then(|p| c.get(p))),
        prev => !ident(prev.as_ref()),
    }
}

fn ident(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// The top-level modules that `crate::` paths in `code` name, with the
/// line of each.
fn crate_paths(code: &str, modules: &BTreeSet<String>) -> Vec<(String, usize)> {
    let c: Vec<char> = code.chars().collect();
    let line_of = |at: usize| c[..at].iter().filter(|&&ch| ch == '\n').count() + 1;
    let word_at = |mut at: usize| {
        while c.get(at).is_some_and(|ch| ch.is_whitespace()) {
            at += 1;
        }
        let start = at;
        while ident(c.get(at)) {
            at += 1;
        }
        c[start..at].iter().collect::<String>()
    };
    let mut found = Vec::new();
    let mut push = |name: String, at: usize| {
        if modules.contains(&name) {
            found.push((name, line_of(at)));
        }
    };
    let needle: Vec<char> = "crate::".chars().collect();
    let mut i = 0;
    while i + needle.len() <= c.len() {
        if c[i..i + needle.len()] != needle[..] || ident(c.get(i.wrapping_sub(1))) {
            i += 1;
            continue;
        }
        let mut at = i + needle.len();
        while c.get(at).is_some_and(|ch| ch.is_whitespace()) {
            at += 1;
        }
        if c.get(at) == Some(&'{') {
            // `crate::{a, b::{c, d}, e}`: the first word of each item.
            let mut depth = 0;
            let mut item_start = true;
            while at < c.len() {
                match c[at] {
                    '{' => {
                        depth += 1;
                        item_start = depth == 1;
                    }
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' => item_start = depth == 1,
                    ch if item_start && !ch.is_whitespace() => {
                        push(word_at(at), at);
                        item_start = false;
                    }
                    _ => {}
                }
                at += 1;
            }
        } else {
            push(word_at(at), at);
        }
        i = at.max(i + 1);
    }
    found
}

/// The strongly connected components of `graph` (Tarjan), each sorted.
fn components(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flat_map(|e| e.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            component.sort();
            s.out.push(component);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

/// The component's members and every edge between them, with the file that
/// makes it.
fn describe(graph: &Graph, component: &[String]) -> String {
    let mut text = format!("cycle among {}:", component.join(", "));
    for from in component {
        for (to, at) in graph.get(from).into_iter().flatten() {
            if component.contains(to) {
                text.push_str(&format!("\n  {from} → {to}  ({at})"));
            }
        }
    }
    text
}
