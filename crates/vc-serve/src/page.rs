//! `GET /`: a small HTML page saying what the server serves, for people who open it in a
//! browser.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};

use crate::error::ApiError;
use crate::render;
use crate::routes::{Shared, background};

/// `text` with the five HTML-special characters escaped.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `GET /`.
pub(crate) async fn index(State(s): State<Arc<Shared>>) -> Result<Response, ApiError> {
    background(s, |s| {
        let tip = s.store.view()?.tip()?;
        let meta = s.store.meta();
        let mut rows = vec![
            (
                "application",
                format!("{} {}", meta.app_name, meta.app_version),
            ),
            ("network", meta.network.clone()),
            ("first block", meta.first_block.to_string()),
        ];
        match tip {
            Some(t) => {
                rows.push(("tip height", t.height.to_string()));
                rows.push(("tip block", render::display_hash(&t.block_hash.0)));
                rows.push(("consensus hash", t.consensus_hash.to_string()));
            }
            None => rows.push(("tip", "none yet".to_owned())),
        }
        let mut table = String::new();
        for (k, v) in rows {
            let _ = writeln!(
                table,
                "<tr><th>{}</th><td><code>{}</code></td></tr>",
                escape(k),
                escape(&v)
            );
        }
        let title = escape(&meta.app_name);
        Ok(Html(format!(
            "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
             <title>{title} virtualchain server</title></head>\n<body>\n\
             <h1>{title} virtualchain server</h1>\n<table>\n{table}</table>\n\
             <p><a href=\"/v1/openapi.json\">OpenAPI document</a> · \
             <a href=\"/metrics\">metrics</a> · <a href=\"/v1/tip\">tip (JSON)</a> · \
             <a href=\"/healthz/ready\">readiness</a></p>\n</body>\n</html>\n"
        ))
        .into_response())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn every_special_character_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("names 1.0"), "names 1.0");
    }
}
