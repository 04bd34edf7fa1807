//! Writing a Dockerfile safely. The host's daemonless builder executes only instructions
//! that run nothing (FROM, LABEL, ENV, COPY, EXPOSE, USER): the image is the base plus
//! one layer holding the WAR. Every value in it comes from users or admins, so none may
//! break out of its place: refuse line breaks and NUL everywhere ([`one_line`]), quote
//! values ([`quote`]), and check unquoted ones are single plain words ([`word`]).

/// A Dockerfile instruction is one line; a line break in a value would start another.
pub fn one_line(what: &str, value: &str) -> Result<(), String> {
    if value.contains(['\n', '\r', '\0']) {
        return Err(format!("the {what} {value:?} contains a line break or NUL, which no Dockerfile line can hold"));
    }
    Ok(())
}

/// Unquoted values must be one word the builder takes literally: whitespace would split
/// it, and quotes, `\` and `$` mean escapes and variables there.
pub fn word(what: &str, value: &str) -> Result<(), String> {
    // A leading '-' would read as a flag (`FROM --platform=…`).
    if value.is_empty() || value.starts_with('-') || value.contains(|c: char| c.is_whitespace() || "\"'\\$".contains(c))
    {
        return Err(format!(
            "the {what} {value:?} must be one word: not empty, not starting with '-', without whitespace, quotes, '\\' or '$'"
        ));
    }
    Ok(())
}

/// A double-quoted Dockerfile value: `\`, `"` and `$` (variable expansion) escaped.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if matches!(c, '\\' | '"' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Tomcat names a WAR's context after its file: `ROOT.war` serves `/`, and a `#` in the
/// name stands for a `/` in the path (`shop#v2.war` serves `/shop/v2`).
pub fn context_file_name(path: &str) -> Result<String, String> {
    if path == "/" {
        return Ok("ROOT".into());
    }
    let segments: Option<Vec<&str>> = path.strip_prefix('/').map(|rest| rest.split('/').collect());
    let valid = segments.as_ref().is_some_and(|segments| {
        segments.iter().all(|seg| {
            !seg.is_empty()
                && *seg != "."
                && *seg != ".."
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        })
    });
    match segments {
        Some(segments) if valid => Ok(segments.join("#")),
        _ => Err(format!(
            "the context path {path:?} names no Tomcat context: use \"/\" or '/'-separated segments of letters, \
             digits, '.', '_' and '-'"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote(r#"a\b"c$d"#), r#""a\\b\"c\$d""#);
        assert_eq!(quote(""), r#""""#);
    }

    #[test]
    fn context_file_names() {
        assert_eq!(context_file_name("/").unwrap(), "ROOT");
        assert_eq!(context_file_name("/shop").unwrap(), "shop");
        assert_eq!(context_file_name("/shop/v2").unwrap(), "shop#v2");
        for bad in ["", "shop", "/shop/", "//", "/../etc", "/a b", "/a#b"] {
            assert!(context_file_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn words_and_lines() {
        assert_eq!(word("image", "tomcat:10.1"), Ok(()));
        for bad in ["", "-x", "a b", "a\"b", "$HOME", "a\\b"] {
            assert!(word("image", bad).unwrap_err().contains("one word"), "{bad:?}");
        }
        assert_eq!(one_line("user", "alice smith"), Ok(()));
        assert!(one_line("user", "alice\nRUN x").unwrap_err().contains("line break"));
    }
}
