//! Label selectors as `kubectl -l` takes them: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`,
//! `a notin (x,y)`, joined by commas.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid label selector {selector:?}: {why}")]
pub struct SelectorError {
    pub selector: String,
    pub why: String,
}

impl Selector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let err = |why: &str| SelectorError {
            selector: s.to_string(),
            why: why.to_string(),
        };
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let part = part.trim();
            if part.is_empty() {
                return Err(err("empty requirement"));
            }
            let req = if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEq(key(k).ok_or_else(|| err("bad key"))?, v.trim().to_string())
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                Requirement::Eq(key(k).ok_or_else(|| err("bad key"))?, v.trim().to_string())
            } else if let Some((k, set)) = part.split_once(" notin ") {
                Requirement::NotIn(
                    key(k).ok_or_else(|| err("bad key"))?,
                    values(set).ok_or_else(|| err("expected (a,b)"))?,
                )
            } else if let Some((k, set)) = part.split_once(" in ") {
                Requirement::In(
                    key(k).ok_or_else(|| err("bad key"))?,
                    values(set).ok_or_else(|| err("expected (a,b)"))?,
                )
            } else if let Some(k) = part.strip_prefix('!') {
                Requirement::NotExists(key(k).ok_or_else(|| err("bad key"))?)
            } else {
                Requirement::Exists(key(part).ok_or_else(|| err("bad key"))?)
            };
            reqs.push(req);
        }
        Ok(Selector(reqs))
    }

    pub fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k));
        self.0.iter().all(|r| match r {
            Requirement::Eq(k, v) => get(k) == Some(v),
            Requirement::NotEq(k, v) => get(k) != Some(v),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
            Requirement::In(k, vs) => get(k).is_some_and(|x| vs.contains(x)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|x| !vs.contains(x)),
        })
    }
}

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn key(k: &str) -> Option<String> {
    let k = k.trim();
    (!k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)))
    .then(|| k.to_string())
}

fn values(set: &str) -> Option<Vec<String>> {
    let inner = set.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selects_like_kubectl() {
        let l = labels(&[("app", "api"), ("tier", "web")]);
        assert!(Selector::parse("app=api").unwrap().matches(Some(&l)));
        assert!(
            Selector::parse("app=api,tier!=db")
                .unwrap()
                .matches(Some(&l))
        );
        assert!(
            Selector::parse("tier in (web, db),app")
                .unwrap()
                .matches(Some(&l))
        );
        assert!(!Selector::parse("!app").unwrap().matches(Some(&l)));
        assert!(
            !Selector::parse("app notin (api)")
                .unwrap()
                .matches(Some(&l))
        );
        assert!(
            Selector::parse("app=")
                .unwrap()
                .matches(Some(&labels(&[("app", "")])))
        );
        assert!(Selector::parse("a b").is_err());
    }
}
