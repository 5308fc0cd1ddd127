//! The layers of `src/lib.rs`, checked: every `crate::`/`super::` path in every source file
//! (tests modules excluded) is resolved to the module it names, and an import against the order
//! fails, as does an import circle between files anywhere in `src/`.
//!
//! The order (each layer uses only those below it): cli, tui → engine → monitor, driver,
//! transport, coord, block, object → exec → ssh → state, config; model, text and safe_file are
//! leaves every layer may use. cli may open tui (the console is one of its actions), never the
//! reverse, and the console reaches coordination only through the engine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's rank: it may import modules of lower rank (and siblings of rank 4).
fn rank(top: &str) -> Option<u8> {
    Some(match top {
        "model" | "text" | "safe_file" => 0,
        "state" | "config" => 1,
        "ssh" => 2,
        "exec" => 3,
        "monitor" | "driver" | "transport" | "coord" | "block" | "object" => 4,
        "engine" => 5,
        "cli" | "tui" => 6,
        _ => return None,
    })
}

/// Whether module `from` (top level) may import `to`.
fn allowed(from: &str, to: &str) -> bool {
    if from == to {
        return true;
    }
    let (Some(a), Some(b)) = (rank(from), rank(to)) else {
        return true;
    };
    match (from, to) {
        ("tui", "coord") => false,
        ("cli", "tui") => true,
        _ => b < a || (a == 4 && b == 4),
    }
}

type Module = Vec<String>;

fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The text without comments, string literals, and `#[cfg(test)]` items (a test module may
/// reach anything).
fn code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if text[i..].starts_with("//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if text[i..].starts_with("/*") {
            i = text[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if text[i..].starts_with("#[cfg(test)]") {
            // skip the attribute and the item it guards: to its `;` or its balanced braces
            i += "#[cfg(test)]".len();
            let mut depth = 0;
            while i < b.len() {
                match b[i] {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    b';' if depth == 0 => {
                        i += 1;
                        break;
                    }
                    _ => {}
                }
                i += 1;
            }
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Every path a `use` tree names: `a::{b, c::{d, e}}` gives `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let head = tree.split(" as ").next().unwrap().trim();
        return vec![head.to_string()];
    };
    let prefix = tree[..open].trim_end_matches("::").trim();
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand)
        .map(|p| {
            if p == "self" {
                prefix.to_string()
            } else {
                format!("{prefix}::{p}")
            }
        })
        .collect()
}

/// The module paths `code` refers to, absolute (`crate::` resolved, `super::`/`self::` made so).
fn references(me: &Module, is_mod_file: bool, code: &str) -> Vec<Module> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let at_word = i == 0 || !rest.as_bytes()[i - 1].is_ascii_alphanumeric() && rest.as_bytes()[i - 1] != b'_';
        let after = &rest[i + 4..];
        let end = after.find(';').unwrap_or(after.len());
        if at_word {
            paths.extend(expand(&after[..end]));
        }
        rest = &after[end.min(after.len())..];
    }
    // inline paths: crate::a::b, super::a
    for word in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(i) = rest.find(word) {
            let tail = &rest[i..];
            let len = tail
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(tail.len());
            paths.push(tail[..len].trim_end_matches(':').to_string());
            rest = &rest[i + word.len()..];
        }
    }
    // a file `a/b.rs` is module a::b: its `super` is a; `a/mod.rs` is a: its `super` is a's parent
    let parent: Module = if is_mod_file || me.is_empty() {
        me[..me.len().saturating_sub(1)].to_vec()
    } else {
        me[..me.len() - 1].to_vec()
    };
    paths
        .into_iter()
        .filter_map(|p| {
            let segs: Vec<&str> = p.split("::").filter(|s| !s.is_empty()).collect();
            let (base, rest): (Module, &[&str]) = match segs.first().copied() {
                Some("crate") => (Vec::new(), &segs[1..]),
                Some("super") => {
                    let mut base = parent.clone();
                    let mut k = 1;
                    while segs.get(k) == Some(&"super") {
                        base.pop();
                        k += 1;
                    }
                    (base, &segs[k..])
                }
                Some("self") => (me.clone(), &segs[1..]),
                _ => return None,
            };
            let mut m = base;
            m.extend(rest.iter().map(|s| s.to_string()));
            Some(m)
        })
        .collect()
}

struct Graph {
    /// module -> modules it imports (other files only)
    edges: BTreeMap<Module, BTreeSet<Module>>,
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeMap<Module, PathBuf> = files.iter().map(|f| (module_of(&src, f), f.clone())).collect();
    let resolve = |path: &Module| -> Option<Module> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|m| modules.contains_key(m))
    };
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (me, file) in &modules {
        let text = std::fs::read_to_string(file).unwrap();
        let is_mod = file.file_name().is_some_and(|n| n == "mod.rs");
        for r in references(me, is_mod, &code(&text)) {
            let Some(target) = resolve(&r) else { continue };
            // a module reaching its own children or itself is not an import between files
            if target.starts_with(me) || me.starts_with(&target) {
                continue;
            }
            edges.entry(me.clone()).or_default().insert(target);
        }
    }
    Graph { edges }
}

fn name(m: &Module) -> String {
    m.join("::")
}

/// The graph between siblings: an import from `a::x::y` to `a::z` is one from `a::x` to `a::z`
/// (a module with its children is one unit to the modules beside it), so a circle through a
/// child file (`tui::ui` -> `tui::app`, `tui::app::render` -> `tui::ui`) is a circle.
fn siblings(g: &Graph) -> Graph {
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (from, tos) in &g.edges {
        for to in tos {
            let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
            if common >= from.len() || common >= to.len() {
                continue;
            }
            edges
                .entry(from[..=common].to_vec())
                .or_default()
                .insert(to[..=common].to_vec());
        }
    }
    Graph { edges }
}

/// Strongly connected components with more than one module (Tarjan).
fn circles(g: &Graph) -> Vec<BTreeSet<String>> {
    struct T<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on: BTreeSet<&'a Module>,
        next: usize,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a Module) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        if let Some(ws) = t.g.edges.get(v) {
            for w in ws {
                if !t.index.contains_key(w) {
                    visit(t, w);
                    let lw = t.low[w];
                    let lv = t.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if t.on.contains(w) {
                    let iw = t.index[w];
                    let lv = t.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = BTreeSet::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.insert(name(w));
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    let nodes: Vec<&Module> = g.edges.keys().collect();
    for v in nodes {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn imports_follow_the_layers() {
    let g = graph();
    let mut crossings = BTreeSet::new();
    for (from, tos) in &g.edges {
        for to in tos {
            if let (Some(a), Some(b)) = (from.first(), to.first()) {
                if !allowed(a, b) {
                    crossings.insert((name(from), b.clone()));
                }
            }
        }
    }
    assert!(
        crossings.is_empty(),
        "imports against the layers of src/lib.rs: {crossings:?}"
    );
}

#[test]
fn no_import_circle_between_files() {
    let found: BTreeSet<BTreeSet<String>> = circles(&siblings(&graph())).into_iter().collect();
    assert!(found.is_empty(), "import circles between files: {found:?}");
}

#[test]
fn the_checker_sees_what_it_checks() {
    // the parser itself: nested use trees, super, inline paths, test modules left out
    assert_eq!(
        expand("crate::a::{b, c::{d, e as f}, self}"),
        vec!["crate::a::b", "crate::a::c::d", "crate::a::c::e", "crate::a"]
    );
    let me: Module = vec!["engine".into(), "cluster".into(), "run".into()];
    let refs = references(
        &me,
        false,
        &code("use super::journal::Journal;\nfn f() { crate::object::raw::x(); }\n#[cfg(test)]\nmod tests { use crate::tui::X; }\n// crate::cli in a comment\n"),
    );
    assert!(refs.contains(&vec![
        "engine".into(),
        "cluster".into(),
        "journal".into(),
        "Journal".into()
    ]));
    assert!(refs.contains(&vec!["object".into(), "raw".into(), "x".into()]));
    assert!(!refs.iter().any(|r| r[0] == "tui" || r[0] == "cli"), "{refs:?}");
    // and the graph has the edges a reader sees
    let g = graph();
    let run = g.edges.get(&me).expect("engine::cluster::run imports");
    assert!(run.contains(&vec!["state".to_string(), "cluster_journal".into()]));
    assert!(
        g.edges.values().map(BTreeSet::len).sum::<usize>() > 300,
        "too few imports found"
    );
    assert!(!allowed("driver", "engine") && !allowed("engine", "tui") && !allowed("tui", "coord"));
    assert!(allowed("engine", "driver") && allowed("driver", "object") && allowed("cli", "tui"));
}
