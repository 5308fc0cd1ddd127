//! The parsed TOML tree read key by key, with every problem recorded (file, line, key) instead of
//! stopping at the first, so `check` can list all of them in one run.

use std::cell::RefCell;
use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::ConfigError;

/// Integers or strings, as operators write `wlag = "2h"` or `wlag = 7200`.
#[derive(Debug, Clone)]
pub enum Scalar {
    Int(i64),
    Str(String),
}

/// Where the text is and what went wrong in it so far.
pub struct Cx<'a> {
    pub file: &'a Path,
    pub text: &'a str,
    /// Byte offset where each line starts: a line lookup is a binary search, not a scan, so
    /// configs with ten thousand pairs load in linear time.
    line_starts: Vec<usize>,
    errors: RefCell<Vec<ConfigError>>,
}

impl<'a> Cx<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Cx {
            file,
            text,
            line_starts,
            errors: RefCell::new(Vec::new()),
        }
    }

    /// 1-based line of a byte offset.
    pub fn line(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset)
    }

    pub fn err(&self, span: Range<usize>, key: &str, message: &str) -> ConfigError {
        self.err_line(self.line(span.start), key, message)
    }

    pub fn err_line(&self, line: usize, key: &str, message: &str) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            key: key.to_string(),
            message: message.to_string(),
        }
    }

    /// Records a problem; checking goes on.
    pub fn report(&self, e: ConfigError) {
        self.errors.borrow_mut().push(e);
    }

    /// The value, or `None` with the error recorded.
    pub fn ok<T>(&self, r: Result<T, ConfigError>) -> Option<T> {
        r.map_err(|e| self.report(e)).ok()
    }

    /// Every recorded error in file order (a stable sort keeps the order of one line's errors).
    pub fn take_errors(&self) -> Vec<ConfigError> {
        let mut v = std::mem::take(&mut *self.errors.borrow_mut());
        v.sort_by_key(|e| e.line);
        v
    }

    /// Turns a TOML syntax error into ours, finding the key from the line it points at.
    pub fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        // an error without a place is put on line 1: every rejection names a line
        let line = e.span().map(|s| self.line(s.start)).unwrap_or(1);
        let mut key = String::new();
        if let Some(text) = self.text.lines().nth(line.saturating_sub(1)) {
            if let Some((k, _)) = text.split_once('=') {
                let k = k.trim();
                if !k.starts_with('[') && !k.is_empty() && k.len() <= 64 {
                    key = k.to_string();
                }
            }
        }
        self.err_line(line, &key, e.message().trim())
    }
}

/// A TOML value's kind, for "expected X, found Y".
fn type_name(v: &DeValue) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// One TOML table being read. Each accessor reports a wrong type and returns `None`, so the
/// caller goes on with its default and the next key.
pub struct Table<'c, 'a, 'i> {
    pub cx: &'c Cx<'a>,
    table: &'c DeTable<'i>,
    /// The table's header (or inline table), for errors about the table as a whole.
    pub span: Range<usize>,
}

impl<'c, 'a, 'i> Table<'c, 'a, 'i> {
    pub fn new(cx: &'c Cx<'a>, table: &'c DeTable<'i>, span: Range<usize>) -> Self {
        Table { cx, table, span }
    }

    /// Line of the table's header.
    pub fn line(&self) -> usize {
        self.cx.line(self.span.start)
    }

    /// Reports every key not in `allowed`.
    pub fn unknown_keys(&self, allowed: &[&str]) {
        for (k, _) in self.table.iter() {
            if !allowed.contains(&k.get_ref().as_ref()) {
                let list = allowed.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ");
                self.cx.report(
                    self.cx
                        .err(k.span(), k.get_ref(), &format!("unknown key (expected one of {list})")),
                );
            }
        }
    }

    /// The keys and values, for tables whose keys are names (`[hosts]`, `[console.keys]`).
    pub fn entries(&self) -> impl Iterator<Item = (&'c Spanned<std::borrow::Cow<'i, str>>, &'c Spanned<DeValue<'i>>)> {
        self.table.iter()
    }

    fn get(&self, key: &str) -> Option<&'c Spanned<DeValue<'i>>> {
        self.table.get(key)
    }

    fn wrong(&self, key: &str, v: &Spanned<DeValue>, expected: &str) {
        self.cx.report(self.cx.err(
            v.span(),
            key,
            &format!("expected {expected}, found {}", type_name(v.get_ref())),
        ));
    }

    pub fn str(&self, key: &str) -> Option<Spanned<String>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(Spanned::new(v.span(), s.to_string())),
            _ => {
                self.wrong(key, v, "a string");
                None
            }
        }
    }

    pub fn int(&self, key: &str) -> Option<Spanned<i64>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(Spanned::new(v.span(), n)),
                Err(_) => {
                    self.cx.report(self.cx.err(v.span(), key, "number too large"));
                    None
                }
            },
            _ => {
                self.wrong(key, v, "a whole number");
                None
            }
        }
    }

    pub fn bool(&self, key: &str) -> Option<Spanned<bool>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(Spanned::new(v.span(), *b)),
            _ => {
                self.wrong(key, v, "true or false");
                None
            }
        }
    }

    pub fn scalar(&self, key: &str) -> Option<Spanned<Scalar>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(Spanned::new(v.span(), Scalar::Str(s.to_string()))),
            DeValue::Integer(_) => self.int(key).map(|n| Spanned::new(n.span(), Scalar::Int(*n.get_ref()))),
            _ => {
                self.wrong(key, v, "a string like \"2h\" or \"50M\", or a whole number");
                None
            }
        }
    }

    /// An array of strings (`endpoints = ["http://a:2379", ...]`), each with its span; `None`
    /// when absent or when something in it is not a string (reported).
    pub fn strs(&self, key: &str) -> Option<Vec<Spanned<String>>> {
        let v = self.get(key)?;
        let DeValue::Array(a) = v.get_ref() else {
            self.wrong(key, v, "an array of strings");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for item in a.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push(Spanned::new(item.span(), s.to_string())),
                _ => {
                    self.wrong(key, item, "a string");
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// The table's one entry when it is a table itself (`[a.b.c]` read as nested tables).
    pub fn only_subtable(&self) -> Option<(String, Table<'c, 'a, 'i>)> {
        let mut it = self.table.iter();
        let (k, v) = it.next()?;
        if it.next().is_some() {
            return None;
        }
        match v.get_ref() {
            DeValue::Table(t) => Some((k.get_ref().to_string(), Table::new(self.cx, t, v.span()))),
            _ => None,
        }
    }

    /// Whether `key` is set at all (whatever its type).
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// A sub-table (`[defaults]`, `[hosts.x]`, an inline `{ ... }`).
    pub fn table(&self, key: &str) -> Option<Table<'c, 'a, 'i>> {
        let v = self.get(key)?;
        Self::as_table(self.cx, key, v)
    }

    /// A value that must be a table.
    pub fn as_table(cx: &'c Cx<'a>, key: &str, v: &'c Spanned<DeValue<'i>>) -> Option<Table<'c, 'a, 'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(Table::new(cx, t, v.span())),
            other => {
                cx.report(cx.err(v.span(), key, &format!("expected a table, found {}", type_name(other))));
                None
            }
        }
    }

    /// An array of tables (`[[pair]]`) or an array of inline tables (`volumes = [{...}]`).
    pub fn tables(&self, key: &str) -> Vec<Table<'c, 'a, 'i>> {
        let Some(v) = self.get(key) else { return Vec::new() };
        match v.get_ref() {
            DeValue::Array(a) => a.iter().filter_map(|item| Self::as_table(self.cx, key, item)).collect(),
            _ => {
                self.wrong(key, v, &format!("an array of tables ([[{key}]])"));
                Vec::new()
            }
        }
    }
}
