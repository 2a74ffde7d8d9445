//! The URL a DPoP proof names (`htu`), normalized for comparison, and the request's own URL
//! behind a proxy.

/// A URL normalized for `htu` comparison (RFC 9449 §4.3, RFC 3986 §6.2.2-6.2.3): scheme and
/// host lower-case, the default port removed, an empty path as `/`; query and fragment are
/// dropped by [`without_query`](Htu::without_query).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Htu {
    pub(super) scheme: String,
    pub(super) authority: String,
    pub(super) path_and_more: String,
}

impl Htu {
    pub(super) fn parse(url: &str) -> Option<Htu> {
        let (scheme, rest) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            return None;
        }
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        // host, host:port, [v6] or [v6]:port; nothing else (`host:3000:80` is not a URL).
        let authority = authority.to_ascii_lowercase();
        let (host, port) = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => {
                (&authority[..i], Some(&authority[i + 1..]))
            }
            _ => (authority.as_str(), None),
        };
        let host_ok = if let Some(v6) = host.strip_prefix('[') {
            v6.ends_with(']') && v6.len() > 1
        } else {
            !host.is_empty() && !host.contains([':', '[', ']'])
        };
        let port_ok = port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
        if !host_ok || !port_ok {
            return None;
        }
        let default_port = if scheme == "https" { "443" } else { "80" };
        let authority = match port {
            Some(p) if p != default_port => format!("{host}:{p}"),
            _ => host.to_owned(),
        };
        let path = if path.is_empty() || path.starts_with(['?', '#']) {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        Some(Htu {
            scheme,
            authority,
            path_and_more: path,
        })
    }

    pub(super) fn without_query(mut self) -> Htu {
        if let Some(i) = self.path_and_more.find(['?', '#']) {
            self.path_and_more.truncate(i);
        }
        self
    }
}

/// `scheme://host` from the first `Forwarded` element, else `X-Forwarded-Proto` and
/// `X-Forwarded-Host`.
pub(super) fn forwarded_origin(headers: &http::HeaderMap) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(fwd) = header("forwarded") {
        let first = fwd.split(',').next().unwrap_or("");
        let mut proto = None;
        let mut host = None;
        for pair in first.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                let v = v.trim_matches('"');
                match k.to_ascii_lowercase().as_str() {
                    "proto" => proto = Some(v.to_owned()),
                    "host" => host = Some(v.to_owned()),
                    _ => {}
                }
            }
        }
        if let (Some(p), Some(h)) = (proto, host) {
            return Some(format!("{p}://{h}"));
        }
    }
    let proto = header("x-forwarded-proto")?.split(',').next()?.trim();
    let host = header("x-forwarded-host")?.split(',').next()?.trim();
    Some(format!("{proto}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::Htu;

    #[test]
    fn htu_normalization() {
        let n = |s: &str| Htu::parse(s).map(Htu::without_query);
        assert_eq!(
            n("HTTPS://API.Example.com:443/me"),
            n("https://api.example.com/me")
        );
        assert_eq!(n("http://h:80"), n("http://h/"));
        assert_eq!(n("https://h/me?x=1#f"), n("https://h/me"));
        assert_ne!(n("https://h/me"), n("https://h/Me"));
        assert_ne!(n("https://h:8443/me"), n("https://h/me"));
        assert_ne!(n("http://h/me"), n("https://h/me"));
        assert_eq!(n("ftp://h/"), None);
        assert_eq!(n("https://user@h/"), None);
        // Found by the dpop fuzz target: two ports are not an authority.
        assert_eq!(n("http://127.0.0.1:3000:80/me"), None);
        assert_eq!(n("http://h:/me"), None);
        assert_eq!(n("http://[::1]:80/me"), n("http://[::1]/me"));
        assert_ne!(n("http://[::1]:8080/me"), n("http://[::1]/me"));
        assert_eq!(n("/relative"), None);
    }
}
