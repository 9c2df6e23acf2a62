//! Spin's variable templates (`"prefix-{{ name }}-suffix"`) and variable-name rules.
//!
//! Mirrors `spin-expressions` (crates/expressions/src/template.rs and `Key::validate` in
//! crates/expressions/src/lib.rs of spinframework/spin): a template is a sequence of literal
//! parts and `{{ expr }}` parts; an expression is a variable name, trimmed of whitespace.

use std::fmt;

/// One piece of a [`Template`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// Literal text, copied as is.
    Lit(String),
    /// A variable reference (`{{ name }}`), already trimmed.
    Expr(String),
}

/// A parsed template: literal text mixed with `{{ variable }}` references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// A template string that could not be parsed.
#[derive(Debug, PartialEq, Eq)]
pub struct TemplateError(pub String);

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid variable template: {}", self.0)
    }
}

impl std::error::Error for TemplateError {}

impl Template {
    /// Parses `template`; an unmatched `{{` is an error, as in Spin.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            if let Some(after_open) = rest.strip_prefix("{{") {
                let Some((expr, tail)) = after_open.split_once("}}") else {
                    return Err(TemplateError("unmatched '{{' in template".into()));
                };
                parts.push(Part::Expr(expr.trim().to_string()));
                rest = tail;
            } else if let Some(idx) = rest.find("{{") {
                parts.push(Part::Lit(rest[..idx].to_string()));
                rest = &rest[idx..];
            } else {
                parts.push(Part::Lit(rest.to_string()));
                rest = "";
            }
        }
        Ok(Self { parts })
    }

    /// The parts, in order.
    #[cfg(test)]
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Whether the template has no `{{ }}` expressions.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    /// The variable names the template refers to.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Expr(e) => Some(e.as_str()),
            Part::Lit(_) => None,
        })
    }

    /// Renders the template, asking `lookup` for each variable's value.
    pub fn render<E>(
        &self,
        mut lookup: impl FnMut(&str) -> Result<String, E>,
    ) -> Result<String, E> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(l) => out.push_str(l),
                Part::Expr(e) => out.push_str(&lookup(e)?),
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Lit(l) => f.write_str(l)?,
                Part::Expr(e) => write!(f, "{{{{ {e} }}}}")?,
            }
        }
        Ok(())
    }
}

/// Checks a variable name against Spin's rules (`spin_expressions::Key::validate`): only
/// lower-case ASCII letters, digits and single underscores, starting with a letter and
/// ending with a letter or digit. The error text is Spin's, prefixed with the quoted name.
pub fn validate_variable_name(key: &str) -> Result<(), String> {
    let reason = if key.is_empty() {
        Some("must not be empty".to_string())
    } else if let Some(invalid) = key
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        Some(format!(
            "invalid character {invalid:?}. Variable names may contain only lower-case letters, numbers, and underscores."
        ))
    } else if !key.as_bytes()[0].is_ascii_lowercase() {
        Some("must start with a lowercase ASCII letter".to_string())
    } else if !key.as_bytes()[key.len() - 1].is_ascii_alphanumeric() {
        Some("must end with a lowercase ASCII letter or digit".to_string())
    } else if key.contains("__") {
        Some("must not contain multiple consecutive underscores".to_string())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(format!("{key:?}: {reason}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Part {
        Part::Lit(s.into())
    }
    fn expr(s: &str) -> Part {
        Part::Expr(s.into())
    }

    #[test]
    fn parses_parts() {
        for (tmpl, expected) in [
            ("", vec![]),
            ("a", vec![lit("a")]),
            ("{{ name }}", vec![expr("name")]),
            ("{{name}}", vec![expr("name")]),
            ("a-{{ expr }}-b", vec![lit("a-"), expr("expr"), lit("-b")]),
            ("{{ one }}{{ two }}", vec![expr("one"), expr("two")]),
            (
                "https://{{ host }}:{{ port }}",
                vec![lit("https://"), expr("host"), lit(":"), expr("port")],
            ),
            ("a } b }}", vec![lit("a } b }}")]),
        ] {
            let t = Template::parse(tmpl).unwrap();
            assert_eq!(t.parts(), expected.as_slice(), "{tmpl:?}");
        }
    }

    #[test]
    fn unmatched_braces_are_rejected() {
        assert!(Template::parse("{{ matched }} {{ unmatched").is_err());
        assert!(Template::parse("{{").is_err());
    }

    #[test]
    fn literal_and_render() {
        assert!(Template::parse("plain").unwrap().is_literal());
        let t = Template::parse("x={{ a }},y={{ b }}").unwrap();
        assert!(!t.is_literal());
        assert_eq!(t.variables().collect::<Vec<_>>(), ["a", "b"]);
        let out: Result<String, ()> = t.render(|v| Ok(v.to_uppercase()));
        assert_eq!(out.unwrap(), "x=A,y=B");
        let err: Result<String, String> = t.render(|v| Err(v.to_string()));
        assert_eq!(err.unwrap_err(), "a");
        assert_eq!(t.to_string(), "x={{ a }},y={{ b }}");
    }

    #[test]
    fn variable_names_follow_spin_rules() {
        for ok in ["a", "api_limit_max", "s3_endpoint", "x1"] {
            assert!(validate_variable_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "1a", "a_", "a__b", "a-b", "Api", "_a"] {
            assert!(validate_variable_name(bad).is_err(), "{bad}");
        }
        assert_eq!(
            validate_variable_name("Bad").unwrap_err(),
            "\"Bad\": invalid character 'B'. Variable names may contain only lower-case letters, numbers, and underscores."
        );
    }
}
