//! OpenAPI 3.1 for what the crate serves, and a page to read it.
//! Needs feature `openapi`.
//!
//! Each part of the crate describes itself as a fragment ([`OpenApi`]):
//! [`ModelViewSet::openapi`] for a viewset,
//! [`token_routes_openapi`](crate::auth::token_routes_openapi) for the token endpoints. Start a
//! document with [`ApiDoc`], merge the fragments, and serve it with [`docs_routes`]: `GET
//! /openapi.json` answers the document, `GET /docs` a [Scalar](https://scalar.com) page that
//! reads it (Scalar's script loads from its CDN when the page is viewed).
//!
//! ```
//! use axum::Router;
//! use wxrest::auth::token_routes_openapi;
//! use wxrest::openapi::{ApiDoc, docs_routes};
//!
//! let doc = ApiDoc::new("Mall API", "1.0.0")
//!     .description("The mall's mini-program backend.")
//!     .merge(token_routes_openapi("/auth"))
//!     // .merge(goods.openapi("/mall/goods")) for each viewset, before `routes_at`
//!     .build();
//! assert!(doc.paths.paths.contains_key("/auth/token/"));
//! let app: Router = Router::new().merge(docs_routes(doc));
//! ```
//!
#![cfg_attr(
    feature = "viewset",
    doc = "[`ModelViewSet::openapi`]: crate::viewset::ModelViewSet::openapi"
)]
#![cfg_attr(not(feature = "viewset"), doc = "[`ModelViewSet::openapi`]: crate")]

use axum::Router;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderValue, header};
use serde_json::Value;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::{RequestBody, RequestBodyBuilder};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, Ref, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    Components, ComponentsBuilder, Content, Info, OpenApi, OpenApiBuilder, OpenApiVersion, RefOr,
    Required,
};
use utoipa_scalar::Scalar;

use crate::validation::FieldError;

/// The name of the JWT security scheme every fragment declares.
pub const JWT_SCHEME: &str = "jwtAuth";

/// Starts a document and merges fragments into it.
///
/// ```
/// use wxrest::openapi::ApiDoc;
///
/// let doc = ApiDoc::new("Mall API", "1.0.0").build();
/// assert_eq!(doc.info.title, "Mall API");
/// assert_eq!(serde_json::to_value(&doc).unwrap()["openapi"], "3.1.0");
/// ```
#[derive(Clone)]
pub struct ApiDoc {
    doc: OpenApi,
}

impl ApiDoc {
    /// An empty OpenAPI 3.1.0 document with this title and version.
    pub fn new(title: impl Into<String>, version: impl Into<String>) -> Self {
        let doc = OpenApiBuilder::new()
            .openapi(OpenApiVersion::Version31)
            .info(Info::new(title.into(), version.into()))
            .build();
        Self { doc }
    }

    /// The document's description (Markdown).
    #[must_use]
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.doc.info.description = Some(text.into());
        self
    }

    /// Adds a fragment's paths, components and tags (the first of two same-named components
    /// wins; operations of a path are joined).
    #[must_use]
    pub fn merge(mut self, fragment: OpenApi) -> Self {
        self.doc.merge(fragment);
        self
    }

    /// The document.
    pub fn build(self) -> OpenApi {
        self.doc
    }
}

/// Serves `doc` at `GET /openapi.json` and a Scalar page reading it at `GET /docs` (and
/// `/docs/`). Same as [`docs_routes_at`]`("", doc)`.
///
/// ```
/// use axum::Router;
/// use wxrest::openapi::{ApiDoc, docs_routes};
///
/// let app: Router = docs_routes(ApiDoc::new("Mall API", "1.0.0").build());
/// ```
pub fn docs_routes(doc: OpenApi) -> Router {
    docs_routes_at("", doc)
}

/// Serves `doc` at `GET {prefix}/openapi.json` and the Scalar page at `GET {prefix}/docs`
/// (and `{prefix}/docs/`), the page pointing at `{prefix}/openapi.json`. Merge the router
/// into the app (as with a viewset's `routes_at`, the prefix is part of the routes so the page
/// knows where the document lives).
///
/// ```
/// use axum::Router;
/// use wxrest::openapi::{ApiDoc, docs_routes_at};
///
/// let doc = ApiDoc::new("Mall API", "1.0.0").build();
/// let app: Router = Router::new().merge(docs_routes_at("/api", doc)); // /api/docs
/// ```
pub fn docs_routes_at(prefix: &str, doc: OpenApi) -> Router {
    let prefix = prefix.trim_end_matches('/');
    let spec_url = format!("{prefix}/openapi.json");
    let json: Result<Bytes, String> = serde_json::to_vec(&doc)
        .map(Bytes::from)
        .map_err(|e| e.to_string());
    let page = scalar_page(&doc.info.title, &spec_url);
    let serve_json = move || {
        let json = json.clone();
        async move {
            match json {
                Ok(body) => (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    body,
                )
                    .into_response(),
                Err(e) => {
                    tracing::error!(error = %e, "the OpenAPI document does not serialize");
                    crate::ApiError::server_error().into_response()
                }
            }
        }
    };
    let serve_page = move || {
        let page = page.clone();
        async move { Html(page).into_response() }
    };
    Router::new()
        .route(&spec_url, get(serve_json))
        .route(&format!("{prefix}/docs"), get(serve_page.clone()))
        .route(&format!("{prefix}/docs/"), get(serve_page))
}

/// Scalar's HTML integration, reading the document from `spec_url` at view time.
const SCALAR_PAGE: &str = r#"<!doctype html>
<html>
<head>
    <title>$title</title>
    <meta charset="utf-8"/>
    <meta name="viewport" content="width=device-width, initial-scale=1"/>
</head>
<body>
<script id="api-reference" data-url="$url"></script>
<script src="https://cdn.jsdelivr.net/npm/@scalar/api-reference"></script>
</body>
</html>
"#;

fn scalar_page(title: &str, spec_url: &str) -> String {
    let html = SCALAR_PAGE.replace("$url", &escape_html(spec_url));
    // The document is fetched by the page, so the template holds no inline spec.
    Scalar::new(Value::Null)
        .title(escape_html(title))
        .custom_html(html)
        .to_html()
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

// ---- Pieces shared by the fragments of the crate. ----

/// The security requirement of an operation that reads the caller's JWT.
pub(crate) fn jwt_requirement() -> SecurityRequirement {
    SecurityRequirement::new(JWT_SCHEME, Vec::<String>::new())
}

/// The components every fragment carries: `Error`, `ValidationError` and the `jwtAuth` scheme.
pub(crate) fn common_components() -> ComponentsBuilder {
    let scheme = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .bearer_format("JWT")
        .description(Some(
            "A JWT access token in `Authorization: Bearer <token>`; the djangorestframework-jwt \
             form `Authorization: JWT <token>` works too.",
        ))
        .build();
    ComponentsBuilder::new()
        .schema(
            "Error",
            ObjectBuilder::new()
                .description(Some(
                    "DRF's error body, with a stable `code` a client can act on (`not_authenticated`, \
                     `token_expired`, `token_revoked`, `permission_denied`, `not_found`, ...).",
                ))
                .property("detail", string())
                .property("code", string())
                .required("detail")
                .required("code"),
        )
        .schema(
            "ValidationError",
            ObjectBuilder::new()
                .description(Some(
                    "DRF's validation errors: each invalid field (or query parameter) with its \
                     messages; `non_field_errors` for the rest.",
                ))
                .additional_properties(Some(ArrayBuilder::new().items(string())))
                .examples([FieldError::Required.for_field("name").body()]),
        )
        .security_scheme(JWT_SCHEME, SecurityScheme::Http(scheme))
}

/// Components for a fragment: the common ones plus `schemas`.
pub(crate) fn components(schemas: Vec<(String, RefOr<Schema>)>) -> Components {
    common_components().schemas_from_iter(schemas).build()
}

/// A `string` schema.
pub(crate) fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// An `integer` (int64) schema.
#[cfg_attr(not(feature = "viewset"), allow(dead_code))]
pub(crate) fn integer() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
}

/// A schema accepting any JSON value.
#[cfg_attr(not(feature = "viewset"), allow(dead_code))]
pub(crate) fn any_value() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::AnyValue)
}

/// A `$ref` to a component schema.
pub(crate) fn schema_ref(name: &str) -> Ref {
    Ref::from_schema_name(name)
}

/// A JSON response.
pub(crate) fn json_response(
    description: &str,
    schema: impl Into<RefOr<Schema>>,
) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(schema)))
        .build()
}

/// A JSON request body.
pub(crate) fn json_body(schema: impl Into<RefOr<Schema>>, required: bool) -> RequestBody {
    let required = if required {
        Required::True
    } else {
        Required::False
    };
    RequestBodyBuilder::new()
        .content("application/json", Content::new(Some(schema)))
        .required(Some(required))
        .build()
}

/// The crate's error answers: 400 field map, 401/403/404 `Error`.
pub(crate) fn error_response(status: u16) -> (String, utoipa::openapi::Response) {
    let response = match status {
        400 => json_response(
            "Invalid input: `{\"field\": [\"message\"]}`.",
            schema_ref("ValidationError"),
        ),
        401 => ResponseBuilder::new()
            .description(
                "No or invalid credentials (`not_authenticated`, `token_expired`, ...), with \
                 `WWW-Authenticate: JWT realm=\"api\"`.",
            )
            .content("application/json", Content::new(Some(schema_ref("Error"))))
            .header("WWW-Authenticate", utoipa::openapi::Header::new(string()))
            .build(),
        403 => json_response(
            "Authenticated but not permitted (`permission_denied`).",
            schema_ref("Error"),
        ),
        404 => json_response("Not found (`not_found`).", schema_ref("Error")),
        _ => json_response("Error.", schema_ref("Error")),
    };
    (status.to_string(), response)
}

/// A query parameter, optional.
#[cfg_attr(not(feature = "viewset"), allow(dead_code))]
pub(crate) fn query_param(
    name: impl Into<String>,
    description: impl Into<String>,
    schema: impl Into<RefOr<Schema>>,
) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}
