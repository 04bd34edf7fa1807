//! Registry auth: a 401 names a scheme in `WWW-Authenticate`. `Basic` means sending
//! the credentials on every request; `Bearer` means asking the named token service
//! (`realm`) for a token covering the session's repository scopes, with the
//! credentials if there are any, and sending that token.

use std::collections::BTreeMap;

use base64::Engine;
use reqwest::header::HeaderValue;

use super::{Credentials, RegistryError};

#[derive(Debug, Clone, Default)]
pub enum AuthState {
    #[default]
    Anonymous,
    Basic(HeaderValue),
    Bearer(HeaderValue),
}

impl AuthState {
    pub fn header(&self) -> Option<HeaderValue> {
        match self {
            AuthState::Anonymous => None,
            AuthState::Basic(v) | AuthState::Bearer(v) => Some(v.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// `Bearer realm="https://auth/token",service="registry",scope="repository:a:pull"`.
    pub fn parse(header: &str) -> Result<Self, String> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let mut params = BTreeMap::new();
        let mut rest = rest.trim();
        while !rest.is_empty() {
            let (key, after) = rest.split_once('=').ok_or_else(|| format!("malformed WWW-Authenticate: {header}"))?;
            let key = key.trim().to_ascii_lowercase();
            let after = after.trim_start();
            let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next().map(|(_, c)| c)),
                        '"' => {
                            end = Some(i + 1);
                            break;
                        }
                        c => value.push(c),
                    }
                }
                let end = end.ok_or_else(|| format!("unterminated quote in WWW-Authenticate: {header}"))?;
                (value, &quoted[end..])
            } else {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_owned(), &after[end..])
            };
            params.insert(key, value);
            rest = remaining.trim_start().trim_start_matches(',').trim_start();
        }
        Ok(Self { scheme: scheme.to_ascii_lowercase(), params })
    }
}

fn basic_header(credentials: &Credentials) -> HeaderValue {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", credentials.username, credentials.password));
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

/// Answers a challenge, returning the auth state to use from now on.
pub async fn authenticate(
    http: &reqwest::Client,
    registry: &str,
    challenge: &Challenge,
    credentials: Option<&Credentials>,
    scopes: &[String],
) -> Result<AuthState, RegistryError> {
    let refused = |diagnostic: String| RegistryError::CredentialsRefused { registry: registry.to_owned(), diagnostic };
    match challenge.scheme.as_str() {
        "basic" => match credentials {
            Some(credentials) => Ok(AuthState::Basic(basic_header(credentials))),
            None => Err(refused("it asks for a user name and password, and none is configured (registry.username, registry.password)".into())),
        },
        "bearer" => {
            let realm = challenge
                .params
                .get("realm")
                .ok_or_else(|| RegistryError::Protocol { registry: registry.into(), what: "auth".into(), message: "a Bearer challenge without realm".into() })?;
            let mut query: Vec<(&str, &str)> = Vec::new();
            if let Some(service) = challenge.params.get("service") {
                query.push(("service", service));
            }
            let mut wanted: Vec<&str> = scopes.iter().map(String::as_str).collect();
            if let Some(scope) = challenge.params.get("scope") {
                if !wanted.contains(&scope.as_str()) {
                    wanted.push(scope);
                }
            }
            query.extend(wanted.into_iter().map(|s| ("scope", s)));
            let mut request = http.get(realm).query(&query);
            if let Some(credentials) = credentials {
                request = request.header(reqwest::header::AUTHORIZATION, basic_header(credentials));
            }
            let response = request.send().await.map_err(|e| RegistryError::Unreachable {
                registry: registry.to_owned(),
                cause: format!("its token service {realm}: {e}"),
            })?;
            let status = response.status();
            if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
                return Err(refused(format!("its token service {realm} answered {status}")));
            }
            if !status.is_success() {
                return Err(RegistryError::Status { registry: registry.into(), what: format!("token from {realm}"), status: status.as_u16(), diagnostic: String::new() });
            }
            #[derive(serde::Deserialize)]
            struct TokenAnswer {
                token: Option<String>,
                access_token: Option<String>,
            }
            let answer: TokenAnswer = response.json().await.map_err(|e| RegistryError::Protocol {
                registry: registry.into(),
                what: format!("token from {realm}"),
                message: e.to_string(),
            })?;
            let token = answer.token.or(answer.access_token).filter(|t| !t.is_empty()).ok_or_else(|| RegistryError::Protocol {
                registry: registry.into(),
                what: format!("token from {realm}"),
                message: "the answer holds no token".into(),
            })?;
            let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| RegistryError::Protocol {
                registry: registry.into(),
                what: format!("token from {realm}"),
                message: "the token is not a valid header value".into(),
            })?;
            value.set_sensitive(true);
            Ok(AuthState::Bearer(value))
        }
        other => Err(refused(format!("it asks for auth scheme {other:?}, which warship does not speak"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let c = Challenge::parse(r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#).unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.example/token");
        assert_eq!(c.params["service"], "registry.example");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
    }

    #[test]
    fn parses_basic_and_unquoted_and_escaped_values() {
        let c = Challenge::parse(r#"Basic realm="Registry \"realm\"", charset=UTF-8"#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry \"realm\"");
        assert_eq!(c.params["charset"], "UTF-8");
        assert!(Challenge::parse(r#"Bearer realm="open"#).is_err());
    }

    #[test]
    fn basic_header_is_base64_and_sensitive() {
        let h = basic_header(&Credentials { username: "alice".into(), password: "s3cret".into() });
        assert_eq!(h.to_str().unwrap(), "Basic YWxpY2U6czNjcmV0");
        assert!(h.is_sensitive());
    }
}
