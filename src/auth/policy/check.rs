//! oslo.policy check strings: parsing `role:admin or (role:member and
//! project_id:%(owner)s)` into a [`Check`] tree, and the pieces evaluation
//! needs (literals, `%(key)s` substitution).

use super::Target;

/// A parsed check string.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Check {
    Always(bool),
    Role(String),
    Rule(String),
    /// `kind:match`: `kind` is a credential name or a quoted literal; `match` a
    /// literal or a `%(target_key)s` reference.
    Generic {
        kind: String,
        matches: String,
    },
    Not(Box<Check>),
    And(Vec<Check>),
    Or(Vec<Check>),
}

impl Check {
    /// Collects the names this check refers to with `rule:name`.
    pub(super) fn referenced(&self, out: &mut Vec<String>) {
        match self {
            Check::Rule(name) if !out.contains(name) => out.push(name.clone()),
            Check::Not(c) => c.referenced(out),
            Check::And(cs) | Check::Or(cs) => cs.iter().for_each(|c| c.referenced(out)),
            _ => {}
        }
    }
}

/// `'community'` → `community`; not a literal → None.
pub(super) fn literal(kind: &str) -> Option<&str> {
    let k = kind.trim();
    for q in ['\'', '"'] {
        if let Some(inner) = k.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return Some(inner);
        }
    }
    match k {
        "True" | "False" => Some(k),
        _ if k.parse::<i64>().is_ok() => Some(k),
        _ => None,
    }
}

/// Replaces `%(key)s` with the target's value; None when the key is absent.
pub(super) fn substitute(pattern: &str, target: &Target) -> Option<String> {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(start) = rest.find("%(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find(")s")?;
        out.push_str(target.get(&after[..end])?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Some(literal(&out).map_or(out.clone(), str::to_string))
}

/// Parses an oslo.policy check string.
pub(super) fn parse_check(text: &str) -> Result<Check, String> {
    let tokens = tokenize(text);
    if tokens.is_empty() {
        return Ok(Check::Always(true));
    }
    let mut pos = 0;
    let check = parse_or(&tokens, &mut pos)?;
    if pos != tokens.len() {
        return Err(format!("unexpected '{}'", tokens[pos]));
    }
    Ok(check)
}

/// Splits on white space (quotes protect it), then peels leading `(` and
/// trailing `)` off each word, as oslo.policy does: `%(owner)s` stays whole.
fn tokenize(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => {
                cur.push(c);
                quote = None;
            }
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                cur.push(c);
                quote = Some(c);
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            None => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let mut out = Vec::new();
    for word in words {
        let inner = word.trim_start_matches('(');
        out.extend(std::iter::repeat_n(
            "(".to_string(),
            word.len() - inner.len(),
        ));
        let core = inner.trim_end_matches(')');
        if !core.is_empty() {
            out.push(core.to_string());
        }
        out.extend(std::iter::repeat_n(
            ")".to_string(),
            inner.len() - core.len(),
        ));
    }
    out
}

fn parse_or(t: &[String], pos: &mut usize) -> Result<Check, String> {
    let mut items = vec![parse_and(t, pos)?];
    while t.get(*pos).is_some_and(|s| s == "or") {
        *pos += 1;
        items.push(parse_and(t, pos)?);
    }
    Ok(if items.len() == 1 {
        items.remove(0)
    } else {
        Check::Or(items)
    })
}

fn parse_and(t: &[String], pos: &mut usize) -> Result<Check, String> {
    let mut items = vec![parse_not(t, pos)?];
    while t.get(*pos).is_some_and(|s| s == "and") {
        *pos += 1;
        items.push(parse_not(t, pos)?);
    }
    Ok(if items.len() == 1 {
        items.remove(0)
    } else {
        Check::And(items)
    })
}

fn parse_not(t: &[String], pos: &mut usize) -> Result<Check, String> {
    if t.get(*pos).is_some_and(|s| s == "not") {
        *pos += 1;
        return Ok(Check::Not(Box::new(parse_not(t, pos)?)));
    }
    parse_atom(t, pos)
}

fn parse_atom(t: &[String], pos: &mut usize) -> Result<Check, String> {
    let tok = t.get(*pos).ok_or("unexpected end of rule")?;
    *pos += 1;
    match tok.as_str() {
        "(" => {
            let inner = parse_or(t, pos)?;
            if t.get(*pos).map(String::as_str) != Some(")") {
                return Err("missing ')'".into());
            }
            *pos += 1;
            Ok(inner)
        }
        "@" => Ok(Check::Always(true)),
        "!" => Ok(Check::Always(false)),
        tok => {
            let (kind, matches) = tok
                .split_once(':')
                .ok_or_else(|| format!("'{tok}' is not a check"))?;
            Ok(match kind {
                "role" => Check::Role(matches.to_string()),
                "rule" => Check::Rule(matches.to_string()),
                _ => Check::Generic {
                    kind: kind.to_string(),
                    matches: matches.to_string(),
                },
            })
        }
    }
}
