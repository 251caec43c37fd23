//! The GraphQL playground: the GraphiQL page a browser gets from an
//! endpoint, and the files it loads.
//!
//! GraphiQL is vendored (see `assets/graphiql/README.md`) and compiled into
//! the binary, so the playground works with no network and loads nothing
//! from elsewhere. A sandbox's page says so in a banner; a sandbox that does
//! not exist gets a 404 page instead.

use axum::extract::Path;
use axum::http::{header, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::workspace::{sandbox_exists, Endpoint};
use super::Shared;

/// The playground of an endpoint, or a 404 page when there is no such
/// sandbox.
pub(super) async fn page(app: &Shared, endpoint: &Endpoint) -> Response {
    let name = match endpoint {
        Endpoint::Production => return playground("production", "/graphql").into_response(),
        Endpoint::Sandbox(name) => name,
    };
    if !sandbox_exists(app, name).await {
        let page = format!(
            "<!doctype html><title>No sandbox</title><p>There is no sandbox named {}.</p>\n",
            html_escape(name)
        );
        return (StatusCode::NOT_FOUND, Html(page)).into_response();
    }
    playground(name, &format!("/sandboxes/{name}/graphql")).into_response()
}

/// The vendored GraphiQL files (see assets/graphiql/README.md).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.min.js",
        "text/javascript",
        include_bytes!("../../assets/graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css",
        include_bytes!("../../assets/graphiql/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript",
        include_bytes!("../../assets/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript",
        include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    ),
    (
        "graphql-ws.min.js",
        "text/javascript",
        include_bytes!("../../assets/graphiql/graphql-ws.min.js"),
    ),
];

/// `GET /graphql/assets/{file}`: one of the vendored files, which browsers
/// may keep for a day.
pub(super) async fn asset(method: Method, Path(file): Path<String>) -> Response {
    if method != Method::GET {
        return StatusCode::NOT_FOUND.into_response();
    }
    vendored(ASSETS, &file, "public, max-age=86400")
}

/// The file `file` of `assets` (name, media type, bytes) with its media type
/// and `cache_control`, or 404.
pub(super) fn vendored(
    assets: &'static [(&'static str, &'static str, &'static [u8])],
    file: &str,
    cache_control: &'static str,
) -> Response {
    match assets.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, cache_control),
            ],
            *bytes,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The playground page for a workspace's endpoint. Everything it loads is
/// served by this binary: it works with no network.
fn playground(workspace: &str, endpoint: &str) -> Html<String> {
    let banner = if workspace == "production" {
        String::new()
    } else {
        format!(
            "<div class=\"crm-banner\">Sandbox <b>{}</b> — changes here do not touch production</div>",
            html_escape(workspace)
        )
    };
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CRM GraphQL — {title}</title>
<link rel="stylesheet" href="/graphql/assets/graphiql.min.css">
<style>
  html, body {{ height: 100%; margin: 0; }}
  body {{ display: flex; flex-direction: column; }}
  #graphiql {{ flex: 1; min-height: 0; }}
  .crm-banner {{ background: #b45309; color: #fff; font: 14px system-ui, sans-serif; padding: 6px 12px; }}
</style>
</head>
<body>
{banner}
<div id="graphiql">Loading the playground…</div>
<script src="/graphql/assets/react.production.min.js"></script>
<script src="/graphql/assets/react-dom.production.min.js"></script>
<script src="/graphql/assets/graphiql.min.js"></script>
<script src="/graphql/assets/graphql-ws.min.js"></script>
<script>
  // Subscriptions go over a WebSocket to the same URL, with the token of
  // the Authorization header in the headers tab.
  let authorization = null;
  const wsUrl = new URL({endpoint}, location.href);
  wsUrl.protocol = wsUrl.protocol === 'https:' ? 'wss:' : 'ws:';
  const wsClient = graphqlWs.createClient({{
    url: wsUrl.href,
    lazy: true,
    connectionParams: () => ({{ authorization }}),
  }});
  const http = GraphiQL.createFetcher({{ url: {endpoint}, wsClient }});
  // The headers tab starts with a placeholder; until a token replaces it,
  // nothing is sent in its name (a browser signed in to the console is
  // then known by its session cookie).
  const fetcher = (params, options) => {{
    const headers = {{ ...((options && options.headers) || {{}}) }};
    for (const name of Object.keys(headers)) {{
      if (name.toLowerCase() === 'authorization' && String(headers[name]).includes('<paste')) delete headers[name];
    }}
    authorization = headers.Authorization || headers.authorization || null;
    return http(params, {{ ...(options || {{}}), headers }});
  }};
  const defaultQuery = `# Welcome to the CRM GraphQL playground ({title}).
# Run it with the play button or Ctrl-Enter.
# The Docs panel (top left) lists every type and field.
query Accounts {{
  accounts(first: 10, orderBy: [{{ field: NAME }}]) {{
    totalCount
    nodes {{
      name
      industry
      contacts(first: 5) {{ nodes {{ firstName lastName email }} }}
      opportunities {{ nodes {{ name amount closeDate }} }}
    }}
  }}
}}
`;
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {{
      fetcher,
      defaultQuery,
      // Requests need an API token: `serve` prints the first one and keeps
      // it in <data-dir>/admin-token. Headers are remembered in this browser.
      defaultHeaders: '{{\n  "Authorization": "Bearer <paste your API token here>"\n}}',
      shouldPersistHeaders: true,
      defaultEditorToolsVisibility: 'headers',
    }})
  );
</script>
</body>
</html>
"#,
        title = html_escape(workspace),
        endpoint = serde_json::Value::String(endpoint.to_owned()),
    ))
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
