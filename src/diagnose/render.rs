//! Rendering a diagnosis: the plain and ANSI reports (`Display`), the JSON field helpers and
//! the text helpers the findings use.

use std::fmt;

use serde::Serializer;
use serde_json::Value;

use crate::pipeline::view::numeric_date;
use crate::Reason;

use super::time::{relative, utc};
use super::{Diagnosis, Finding};

impl Diagnosis {
    pub(super) fn render(&self, out: &mut impl fmt::Write, ansi: bool) -> fmt::Result {
        let st = Style(ansi);
        let unchecked = !self.checked_against.signature_check;
        match self.reason {
            None if self.valid => {
                writeln!(out, "{} the token is accepted", st.paint("1;32", "VALID:"))?;
            }
            None if unchecked && self.findings.is_empty() => {
                writeln!(
                    out,
                    "{} no problem found, but the signature was not checked",
                    st.paint("1;33", "UNVERIFIED:")
                )?;
            }
            reason => {
                let reason = reason.unwrap_or(Reason::Malformed);
                let error = reason
                    .bearer_error()
                    .map(|e| format!(", {e}"))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{} rejected as {} ({}{error}){}",
                    st.paint("1;31", "INVALID:"),
                    st.paint("1", reason.code()),
                    reason.status().as_u16(),
                    if unchecked {
                        "; the signature was not checked"
                    } else {
                        ""
                    },
                )?;
            }
        }
        writeln!(
            out,
            "Checked at {} ({})",
            self.checked_at_utc, self.checked_at
        )?;

        writeln!(out)?;
        match &self.header {
            Some(h) => {
                writeln!(out, "{}", st.paint("1", "Header"))?;
                for (name, value) in h {
                    writeln!(out, "  {name}: {}", show_json(value, 200))?;
                }
            }
            None => writeln!(out, "{} not decodable", st.paint("1", "Header:"))?,
        }
        match &self.claims {
            Some(c) => {
                let title = if self.signature_verified {
                    "Claims"
                } else {
                    "Claims (not verified)"
                };
                writeln!(out, "{}", st.paint("1", title))?;
                for (name, value) in c {
                    write!(out, "  {name}: {}", show_json(value, 200))?;
                    if matches!(name.as_str(), "exp" | "nbf" | "iat" | "auth_time") {
                        if let Some(t) = numeric_date(value) {
                            write!(
                                out,
                                "  {}",
                                st.paint(
                                    "2",
                                    &format!("({}, {})", utc(t), relative(t, self.checked_at))
                                )
                            )?;
                        }
                    }
                    writeln!(out)?;
                }
            }
            None => writeln!(out, "{} not decodable", st.paint("1", "Claims:"))?,
        }

        writeln!(out)?;
        if self.findings.is_empty() {
            writeln!(out, "{}", st.paint("1;32", "No problems found"))?;
        } else {
            let n = self.findings.len();
            let title = if n == 1 {
                "1 problem".to_owned()
            } else {
                format!("{n} problems")
            };
            writeln!(out, "{}", st.paint("1;31", &title))?;
            for (i, f) in self.findings.iter().enumerate() {
                render_finding(out, &st, &format!("{}.", i + 1), f, "31")?;
            }
        }
        if !self.warnings.is_empty() {
            writeln!(out)?;
            writeln!(out, "{}", st.paint("1;33", "Warnings"))?;
            for f in &self.warnings {
                render_finding(out, &st, "-", f, "33")?;
            }
        }
        if !self.notes.is_empty() {
            writeln!(out)?;
            writeln!(out, "{}", st.paint("1", "Notes"))?;
            for n in &self.notes {
                writeln!(out, "  - {n}")?;
            }
        }

        let c = &self.checked_against;
        writeln!(out)?;
        writeln!(out, "{}", st.paint("1", "Checked against"))?;
        if !c.signature_check {
            writeln!(out, "  signature: (not checked: no key)")?;
        }
        for t in &c.trusts {
            let issuers = if !c.issuer_check {
                "(not checked)".to_owned()
            } else if t.issuers.is_empty() {
                "(none)".to_owned()
            } else {
                list(&t.issuers)
            };
            writeln!(out, "  issuer: {issuers}")?;
            let audiences = if c.audience_check {
                list(&t.audiences)
            } else {
                "(not checked)".to_owned()
            };
            writeln!(out, "    audience: {audiences}")?;
            if let Some(src) = &t.key_source {
                writeln!(out, "    key source: {src}")?;
            }
            if t.keys.is_empty() && c.signature_check {
                writeln!(out, "    keys: (none loaded)")?;
            }
            for k in &t.keys {
                let algs: Vec<String> = k.algorithms.iter().map(|a| format!("{a:?}")).collect();
                let kid = k
                    .kid
                    .as_deref()
                    .map(|k| format!("`{k}`"))
                    .unwrap_or_else(|| "(no kid)".into());
                writeln!(out, "    key: {kid} {} ({})", k.kind, algs.join(", "))?;
            }
        }
        writeln!(out, "  leeway: {} s", c.leeway_secs)?;
        if let Some(t) = &c.required_type {
            writeln!(out, "  required type: {t}")?;
        }
        if !c.required_claims.is_empty() {
            writeln!(out, "  required claims: {}", list(&c.required_claims))?;
        }
        if !c.required_scopes.is_empty() {
            writeln!(out, "  required scopes: {}", list(&c.required_scopes))?;
        }
        Ok(())
    }
}

fn render_finding(
    out: &mut impl fmt::Write,
    st: &Style,
    bullet: &str,
    f: &Finding,
    colour: &str,
) -> fmt::Result {
    let subject = f
        .subject
        .as_deref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    writeln!(
        out,
        "  {bullet} {}{subject}",
        st.paint(&format!("1;{colour}"), f.reason.code())
    )?;
    writeln!(out, "     {}", f.facts)?;
    if !f.hint.is_empty() {
        writeln!(out, "     {} {}", st.paint("1;36", "Fix:"), f.hint)?;
    }
    Ok(())
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.render(f, false)
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason.code())?;
        if let Some(s) = &self.subject {
            write!(f, " ({s})")?;
        }
        write!(f, ": {}", self.facts)?;
        if !self.hint.is_empty() {
            write!(f, " Fix: {}", self.hint)?;
        }
        Ok(())
    }
}

pub(super) fn ser_reason<S: Serializer>(reason: &Reason, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(reason.code())
}

pub(super) fn ser_opt_reason<S: Serializer>(
    reason: &Option<Reason>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match reason {
        Some(r) => s.serialize_str(r.code()),
        None => s.serialize_none(),
    }
}

struct Style(bool);

impl Style {
    fn paint(&self, codes: &str, text: &str) -> String {
        if self.0 {
            format!("\u{1b}[{codes}m{text}\u{1b}[0m")
        } else {
            text.to_owned()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Text helpers.

pub(super) fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

pub(super) fn show_json(v: &Value, max: usize) -> String {
    clip(&v.to_string(), max)
}

/// `` `a`, `b` `` (or `(none)`).
pub(super) fn list(items: &[String]) -> String {
    if items.is_empty() {
        return "(none)".to_owned();
    }
    items
        .iter()
        .take(20)
        .map(|s| format!("`{}`", clip(s, 120)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn one_of(items: &[String]) -> String {
    match items.len() {
        0 => "(no issuer configured)".to_owned(),
        1 => list(items),
        _ => format!("one of {}", list(items)),
    }
}
