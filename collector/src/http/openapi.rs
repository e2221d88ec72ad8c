//! `GET /api/v1/openapi.json`: the API's OpenAPI 3.0 document
//! (`openapi.json` beside this file), served as written; no credentials
//! needed.
//!
//! The tests keep the document honest: it must parse as OpenAPI, every
//! reference must resolve, its operations must be exactly the routes
//! registered in this folder's modules (HTML pages aside), and the request
//! schemas must name the fields of the Rust types the handlers decode.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;

/// The document, as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(document))
}

async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeSet;
    use std::path::Path;

    use axum::http::StatusCode;
    use serde_json::{Map, Value, json};

    use super::DOCUMENT;
    use crate::http::testing;

    /// Modules in `src/http` that serve HTML pages, not the API: their routes
    /// are not in the document.
    /// HTML page modules (a file, or a folder ending in `/`), relative to
    /// `src/http`.
    const HTML_MODULES: &[&str] = &["login.rs", "pages/"];

    /// The methods the scan recognises in a `.route(...)` call.
    const METHODS: &[&str] = &["get", "post", "put", "delete", "patch"];

    type Routes = BTreeSet<(String, String)>;

    fn doc() -> Value {
        serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
    }

    /// What the document at `pointer` (`#/components/...`) refers to.
    fn resolve<'a>(doc: &'a Value, pointer: &str) -> Option<&'a Value> {
        doc.pointer(pointer.strip_prefix('#')?)
    }

    /// `v` itself, or what it refers to if it is a `$ref`.
    fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => resolve(doc, r).unwrap_or_else(|| panic!("unresolved {r}")),
            None => v,
        }
    }

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_document_is_openapi_and_every_ref_resolves() {
        let parsed: openapiv3::OpenAPI = serde_json::from_str(DOCUMENT).unwrap_or_else(|e| panic!("not OpenAPI: {e}"));
        assert_eq!(parsed.openapi, "3.0.3");
        assert_eq!(parsed.info.title, "Caretaker collector API");
        assert_eq!(
            parsed.info.version,
            env!("CARGO_PKG_VERSION"),
            "info.version is the crate's"
        );
        let schemes = parsed.components.as_ref().map(|c| &c.security_schemes).unwrap();
        for s in ["bearer", "session", "agent"] {
            assert!(schemes.contains_key(s), "security scheme {s}");
        }

        let doc = doc();
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > 50, "the document uses its components");
        let broken: Vec<_> = all.iter().filter(|r| resolve(&doc, r).is_none()).collect();
        assert!(broken.is_empty(), "unresolved $ref: {broken:?}");

        // Each operation has a summary, an id of its own and at least one answer.
        let mut ids = BTreeSet::new();
        for (method, path) in doc_operations(&doc) {
            let op = &doc["paths"][&path][method.to_lowercase()];
            assert!(op["summary"].is_string(), "{method} {path}: summary");
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}: responses"
            );
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: operationId"));
            assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
        }
    }

    /// The (METHOD, path) pairs the document describes.
    fn doc_operations(doc: &Value) -> Routes {
        let mut ops = Routes::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if METHODS.contains(&method.as_str()) {
                    ops.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        ops
    }

    /// Replaces the insides of string and character literals by spaces, so a
    /// scan for parentheses and method names sees code only; lengths and
    /// positions are kept.
    fn blank_literals(src: &[char]) -> Vec<char> {
        let mut out = src.to_vec();
        let mut i = 0;
        while i < src.len() {
            match src[i] {
                '"' => {
                    i += 1;
                    while i < src.len() && src[i] != '"' {
                        let step = if src[i] == '\\' { 2 } else { 1 };
                        for c in out.iter_mut().skip(i).take(step) {
                            *c = ' ';
                        }
                        i += step;
                    }
                }
                // A character literal ('x', '\n', '"'); a lifetime otherwise.
                '\'' if src.get(i + 1) == Some(&'\\') => {
                    let end = (i + 2..src.len()).find(|&j| src[j] == '\'').unwrap_or(src.len());
                    out[i + 1..end].fill(' ');
                    i = end;
                }
                '\'' if src.get(i + 2) == Some(&'\'') => {
                    out[i + 1] = ' ';
                    i += 2;
                }
                _ => {}
            }
            i += 1;
        }
        out
    }

    /// The routes a module's source registers: every `.route(PATH, ...)` call
    /// outside comments and the inline test module (`#[cfg(test)] mod tests {`
    /// to the end of the file; a `#[cfg(test)] mod x;` declaration is not
    /// one), PATH a string literal or a
    /// `const` of the same file, the methods those of the method routers
    /// (`get(`, `post(`, ...) in the same call. Panics on what it cannot read
    /// (another kind of registration, an unknown constant, a call without a
    /// known method), so nothing goes unseen silently.
    fn scan_routes(file: &str, src: &str) -> Routes {
        let code: String = src
            .split("\n#[cfg(test)]\nmod tests {")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let raw: Vec<char> = code.chars().collect();
        let blank = blank_literals(&raw);
        let text: String = blank.iter().collect();
        for other in [".route_service(", ".nest(", ".nest_service(", ".fallback("] {
            assert!(
                !text.contains(other),
                "{file}: `{other}` registers routes the openapi coverage scan does not read"
            );
        }
        let mut routes = Routes::new();
        let mut from = 0;
        while let Some(at) = text[from..].find(".route(").map(|p| p + from) {
            // `text` is ASCII-blanked only where literals were; map the byte
            // offset back to a char index.
            let open = text[..at].chars().count() + ".route(".len() - 1;
            let mut depth = 0;
            let mut close = open;
            for (j, c) in blank.iter().enumerate().skip(open) {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            close = j;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            assert!(close > open, "{file}: unbalanced .route( call");
            let args: String = blank[open + 1..close].iter().collect();
            let comma = args
                .find(',')
                .unwrap_or_else(|| panic!("{file}: .route( with one argument"));
            let first_len = args[..comma].chars().count();
            let first: String = raw[open + 1..open + 1 + first_len]
                .iter()
                .collect::<String>()
                .trim()
                .to_string();
            let path = match first.strip_prefix('"').and_then(|f| f.strip_suffix('"')) {
                Some(p) => p.to_string(),
                None => const_str(&code, &first).unwrap_or_else(|| {
                    panic!("{file}: route path {first:?} is not a literal nor a const &str of the file")
                }),
            };
            let rest = &args[comma..];
            let methods: Vec<&str> = METHODS
                .iter()
                .copied()
                .filter(|m| {
                    rest.match_indices(&format!("{m}(")).any(|(k, _)| {
                        rest[..k]
                            .chars()
                            .next_back()
                            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
                    })
                })
                .collect();
            assert!(
                !methods.is_empty(),
                "{file}: route {path} with no get/post/put/delete/patch"
            );
            for m in methods {
                routes.insert((m.to_uppercase(), path.clone()));
            }
            from = at + 1;
        }
        routes
    }

    /// The value of `const NAME: &str = "...";` in `code`.
    fn const_str(code: &str, name: &str) -> Option<String> {
        let decl = format!("const {name}: &str = \"");
        let start = code.find(&decl)? + decl.len();
        let len = code[start..].find('"')?;
        Some(code[start..start + len].to_string())
    }

    /// Every API route registered under `src/http` (folders included),
    /// HTML page modules aside.
    fn source_routes() -> Routes {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
        let mut routes = Routes::new();
        let mut files = 0;
        let mut pending = vec![dir.clone()];
        while let Some(d) = pending.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                let rel = path.strip_prefix(&dir).unwrap().to_string_lossy().replace('\\', "/");
                if path.is_dir() {
                    if !HTML_MODULES.contains(&format!("{rel}/").as_str()) {
                        pending.push(path);
                    }
                    continue;
                }
                if !rel.ends_with(".rs") || HTML_MODULES.contains(&rel.as_str()) {
                    continue;
                }
                let src = std::fs::read_to_string(&path).unwrap();
                routes.extend(scan_routes(&rel, &src));
                files += 1;
            }
        }
        assert!(files >= 10, "read the handler modules in {}", dir.display());
        routes
    }

    #[test]
    fn the_scan_reads_route_registrations() {
        let src = r#"
const BASE: &str = "/api/v1/things";
// .route("/commented", get(nothing))
pub fn router() -> Router<AppState> {
    Router::new()
        .route(BASE, get(list).post(add))
        .route(
            "/api/v1/things/{id}",
            get(one).put(budget_put).delete(end),
        )
        .route("/healthz", get(|| async { "get(post( ok)\n" }))
        .route("/p", post(move |b: char| async move { b == '"' || b == ')' }))
}
#[cfg(test)]
mod tests {
    fn f() { Router::new().route("/test-only", get(x)); }
}
"#;
        let got = scan_routes("example.rs", src);
        let want: Routes = [
            ("GET", "/api/v1/things"),
            ("POST", "/api/v1/things"),
            ("GET", "/api/v1/things/{id}"),
            ("PUT", "/api/v1/things/{id}"),
            ("DELETE", "/api/v1/things/{id}"),
            ("GET", "/healthz"),
            ("POST", "/p"),
        ]
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
        assert_eq!(got, want);

        let nested = std::panic::catch_unwind(|| scan_routes("n.rs", "fn r() { Router::new().nest(\"/x\", y) }"));
        assert!(nested.is_err(), "a registration the scan cannot read fails loudly");
        let unknown = std::panic::catch_unwind(|| scan_routes("u.rs", "fn r() { Router::new().route(P, get(x)) }"));
        assert!(unknown.is_err(), "an unresolved path constant fails loudly");
    }

    #[test]
    fn every_route_is_documented_and_every_operation_is_routed() {
        let routed = source_routes();
        let documented = doc_operations(&doc());
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from collector/src/http/openapi.json (document them, or list an HTML page module in HTML_MODULES): {undocumented:?}"
        );
        assert!(
            unrouted.is_empty(),
            "operations in openapi.json that no module registers: {unrouted:?}"
        );
        // A few that must be there, so an empty scan cannot pass.
        for (m, p) in [
            ("POST", "/api/v1/reports"),
            ("POST", "/api/v1/reports/inspection"),
            ("DELETE", "/api/v1/maintenance/{id}"),
            ("GET", "/metrics"),
            ("GET", "/api/v1/openapi.json"),
        ] {
            assert!(routed.contains(&(m.to_string(), p.to_string())), "{m} {p}");
        }
        assert!(
            !routed.iter().any(|(_, p)| p == "/login"),
            "HTML pages are not API routes"
        );
    }

    /// A value for `schema`: every property (or only the required ones), the
    /// first enum value or `oneOf` branch, minimums for numbers.
    fn example(doc: &Value, schema: &Value, all: bool) -> Value {
        let s = deref(doc, schema);
        if let Some(first) = s["oneOf"].as_array().and_then(|o| o.first()) {
            return example(doc, first, all);
        }
        if let Some(parts) = s["allOf"].as_array() {
            let mut m = Map::new();
            for p in parts {
                if let Value::Object(o) = example(doc, p, all) {
                    m.extend(o);
                }
            }
            return Value::Object(m);
        }
        if let Some(first) = s["enum"].as_array().and_then(|e| e.first()) {
            return first.clone();
        }
        match s["type"].as_str() {
            Some("string") => json!("x"),
            Some("integer") => json!(s["minimum"].as_i64().unwrap_or(1)),
            Some("number") => json!(1.5),
            Some("boolean") => json!(false),
            Some("array") => json!([example(doc, &s["items"], all)]),
            Some("object") => {
                let required: Vec<&str> = s["required"]
                    .as_array()
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let mut m = Map::new();
                for (k, v) in s["properties"].as_object().into_iter().flatten() {
                    if all || required.contains(&k.as_str()) {
                        m.insert(k.clone(), example(doc, v, all));
                    }
                }
                Value::Object(m)
            }
            _ => Value::Null,
        }
    }

    fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
        let s = &doc["components"]["schemas"][name];
        assert!(s.is_object(), "schema {name}");
        s
    }

    /// Every key of `value` is a property of `schema`, recursively into
    /// objects and arrays of objects.
    fn keys_in_schema(doc: &Value, schema: &Value, value: &Value, at: &str) {
        let s = deref(doc, schema);
        match value {
            Value::Object(m) => {
                let props = s["properties"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{at}: the schema has no properties"));
                for (k, v) in m {
                    let p = props
                        .get(k)
                        .unwrap_or_else(|| panic!("{at}: field {k:?} is not in the schema"));
                    keys_in_schema(doc, p, v, &format!("{at}.{k}"));
                }
            }
            Value::Array(a) => {
                for v in a {
                    keys_in_schema(doc, &s["items"], v, &format!("{at}[]"));
                }
            }
            _ => {}
        }
    }

    /// The schema's examples, with every property and with the required ones
    /// only, decode as `T` (its `deny_unknown_fields` refuses a property
    /// the struct lacks; a field the struct requires must be a required
    /// property).
    fn decodes<T: serde::de::DeserializeOwned>(doc: &Value, schema: &Value, what: &str) {
        for all in [true, false] {
            let v = example(doc, schema, all);
            if let Err(e) = serde_json::from_value::<T>(v.clone()) {
                panic!("{what} (all properties: {all}): {v} does not decode: {e}");
            }
        }
    }

    #[test]
    fn request_schemas_name_the_fields_the_handlers_decode() {
        use crate::queue::{CaseAction, FaultReport, Satisfaction};
        use crate::spares::{PartReplaced, ServiceReport, SpareModel};

        let doc = doc();
        for (name, strict) in [
            ("FaultReport", true),
            ("ServiceReport", true),
            ("PartReplaced", true),
            ("Satisfaction", true),
            ("SpareModel", true),
            ("SpareModelBody", true),
            ("ResolveReport", true),
            ("WindowSpec", true),
            ("EnrollRequest", true),
            ("StockBody", true),
            ("MapBody", true),
            ("DismissBody", true),
            ("GenerateInspection", true),
        ] {
            assert_eq!(
                schema(&doc, name)["additionalProperties"],
                json!(!strict),
                "{name}: the struct denies unknown fields"
            );
        }

        decodes::<FaultReport>(&doc, schema(&doc, "FaultReport"), "FaultReport");
        decodes::<ServiceReport>(&doc, schema(&doc, "ServiceReport"), "ServiceReport");
        decodes::<Satisfaction>(&doc, schema(&doc, "Satisfaction"), "Satisfaction");
        // The path names the model: the body's schema has no `model`.
        decodes::<SpareModel>(&doc, schema(&doc, "SpareModelBody"), "SpareModelBody");
        decodes::<ServiceReport>(&doc, schema(&doc, "ResolveReport"), "ResolveReport");
        decodes::<crate::cases::hold::WindowSpec>(&doc, schema(&doc, "WindowSpec"), "WindowSpec");
        decodes::<crate::http::enroll::EnrollRequest>(&doc, schema(&doc, "EnrollRequest"), "EnrollRequest");

        // Every branch of the case action, and the mapping names them all.
        let action = schema(&doc, "CaseAction");
        let branches = action["oneOf"].as_array().unwrap();
        let mapping = action["discriminator"]["mapping"].as_object().unwrap();
        assert_eq!(branches.len(), 10);
        assert_eq!(mapping.len(), branches.len());
        for (tag, target) in mapping {
            let branch = json!({ "$ref": target });
            assert!(branches.contains(&branch), "mapping {tag} is a branch");
            assert_eq!(example(&doc, &branch, true)["action"], json!(tag), "{tag}");
            decodes::<CaseAction>(&doc, &branch, &format!("CaseAction {tag}"));
        }

        // Real values, serialised: each key is a property of the schema.
        let part = PartReplaced {
            part_type: "disk".into(),
            slot: "/dev/sda".into(),
            old_model: "OLD".into(),
            old_serial: "S1".into(),
            new_model: "NEW".into(),
            new_serial: "S2".into(),
            location: Some("hq".into()),
        };
        let report = ServiceReport {
            id: Some(1),
            case_id: Some(2),
            host: "db01".into(),
            mode: "on_site".into(),
            symptom: "disk failed".into(),
            work_done: "replaced".into(),
            engineer: "ana".into(),
            minutes: 30,
            parts: vec![part],
            at_ms: Some(1),
        };
        let report = serde_json::to_value(&report).unwrap();
        assert!(report["parts"][0]["new_serial"].is_string());
        keys_in_schema(&doc, schema(&doc, "ServiceReport"), &report, "ServiceReport");
        let satisfaction = Satisfaction {
            score: Some(4),
            comment: "quick".into(),
            no_answer: false,
        };
        keys_in_schema(
            &doc,
            schema(&doc, "Satisfaction"),
            &serde_json::to_value(&satisfaction).unwrap(),
            "Satisfaction",
        );
        let model = SpareModel {
            model: "ST4000".into(),
            part_type: "disk".into(),
            interface: "sata".into(),
            capacity_bytes: Some(4_000_000_000_000),
            fits_asset_models: vec!["R740".into()],
            fits_controller_models: vec!["PERC H730P Mini".into()],
            description: "4 TB".into(),
        };
        keys_in_schema(
            &doc,
            schema(&doc, "SpareModel"),
            &serde_json::to_value(&model).unwrap(),
            "SpareModel",
        );
    }

    #[tokio::test]
    async fn the_documented_fault_report_is_accepted_by_the_handler() {
        let dir = tempfile::tempdir().unwrap();
        let state = testing::state(&dir).await;
        let doc = doc();
        let mut body = example(&doc, schema(&doc, "FaultReport"), true);
        body["asset"] = json!("db01");
        let (status, v) = testing::call(&state, "POST", "/api/v1/cases", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        assert!(v["id"].is_i64() && v["created"] == json!(true), "{v}");
    }

    #[tokio::test]
    async fn the_document_is_served_without_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let state = testing::state(&dir).await;
        let r = testing::send(&state, "GET", "/api/v1/openapi.json", &[], "").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.headers["content-type"], "application/json");
        let served: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(served, doc());
        assert_eq!(served["info"]["title"], "Caretaker collector API");
    }
}
