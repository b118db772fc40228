//! The OpenAPI document as a specification: what a viewset and the token endpoints declare,
//! how the docs routes serve it, and that it is valid OpenAPI 3.1.

use axum::body::Body;
use axum::response::IntoResponse;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use wxrest::auth::token_routes_openapi;
use wxrest::openapi::{ApiDoc, docs_routes};
use wxrest::viewset::*;

use crate::databases::sqlite_memory;
use crate::item::Item;

/// A full viewset at `/mall/items`, a read-only one with extra actions at `/shop/items`,
/// cursor- and un-paginated ones, and the token endpoints at `/auth`.
async fn document() -> Value {
    let db = sqlite_memory().await;
    let full = ModelViewSet::<Item>::new(db.clone()).pagination(PageNumber::size(10).max(50));
    let read_only = ModelViewSet::<Item>::new(db.clone())
        .actions([Action::List, Action::Retrieve])
        .pagination(LimitOffset::new(10, 100))
        .action("publish", true, Method::POST, |_| async {
            Ok(json!({"ok": true}).to_string().into_response())
        })
        .action("cheap", false, Method::GET, |_| async {
            Ok(json!([]).to_string().into_response())
        });
    let doc = ApiDoc::new("Test API", "0.1.0")
        .description("For tests.")
        .merge(full.openapi("/mall/items"))
        .merge(read_only.openapi_as("/shop/items/", "shop_items"))
        .merge(token_routes_openapi("/auth"))
        .build();
    serde_json::to_value(&doc).unwrap()
}

fn param_names(operation: &Value) -> Vec<String> {
    operation["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

fn param<'a>(operation: &'a Value, name: &str) -> &'a Value {
    operation["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no parameter {name}"))
}

#[tokio::test]
async fn document_is_openapi_3_1_0_with_title_and_version() {
    let doc = document().await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Test API");
    assert_eq!(doc["info"]["version"], "0.1.0");
}

#[tokio::test]
async fn every_routed_action_has_an_operation_at_the_trailing_slash_path() {
    let doc = document().await;
    let paths = &doc["paths"];
    let ids = [
        ("/mall/items/", "get", "items_list"),
        ("/mall/items/", "post", "items_create"),
        ("/mall/items/{id}/", "get", "items_retrieve"),
        ("/mall/items/{id}/", "put", "items_update"),
        ("/mall/items/{id}/", "patch", "items_partial_update"),
        ("/mall/items/{id}/", "delete", "items_destroy"),
    ];
    for (path, method, id) in ids {
        let op = &paths[path][method];
        assert_eq!(op["operationId"], id, "{method} {path}");
        assert_eq!(op["tags"], json!(["items"]));
        assert!(
            op["description"]
                .as_str()
                .unwrap()
                .contains("with and without the trailing slash")
        );
    }
    assert!(paths.get("/mall/items").is_none());
    assert_eq!(
        paths["/mall/items/{id}/"]["get"]["parameters"][0],
        json!({"name": "id", "in": "path", "required": true,
               "description": "The object's id.", "schema": {"type": "integer", "format": "int64"}})
    );
}

#[tokio::test]
async fn unrouted_actions_have_no_operation() {
    let doc = document().await;
    let paths = &doc["paths"];
    assert_eq!(
        paths["/shop/items/"]["get"]["operationId"],
        "shop_items_list"
    );
    assert!(paths["/shop/items/"].get("post").is_none());
    assert!(paths["/shop/items/{id}/"].get("get").is_some());
    for method in ["put", "patch", "delete"] {
        assert!(paths["/shop/items/{id}/"].get(method).is_none(), "{method}");
    }
}

#[tokio::test]
async fn extra_actions_are_documented_with_their_method() {
    let doc = document().await;
    let publish = &doc["paths"]["/shop/items/{id}/publish/"]["post"];
    assert_eq!(publish["operationId"], "shop_items_publish");
    assert_eq!(publish["parameters"][0]["name"], "id");
    assert!(publish["responses"].get("404").is_some());
    let cheap = &doc["paths"]["/shop/items/cheap/"];
    assert_eq!(cheap["get"]["operationId"], "shop_items_cheap");
    assert!(cheap.get("post").is_none());
}

#[tokio::test]
async fn list_parameters_come_from_the_schema() {
    let doc = document().await;
    let list = &doc["paths"]["/mall/items/"]["get"];
    let names = param_names(list);
    for expected in [
        "id",
        "id__in",
        "name",
        "name__icontains",
        "price",
        "price__gt",
        "price__gte",
        "price__lt",
        "price__lte",
        "price__in",
        "on_sale",
        "category",
        "category__isnull",
        "category__in",
        "created_at__gte",
        "created_at__lte",
        "search",
        "ordering",
        "page",
        "page_size",
    ] {
        assert!(names.iter().any(|n| n == expected), "missing {expected}");
    }
    for absent in ["description", "price__icontains", "limit", "cursor"] {
        assert!(!names.iter().any(|n| n == absent), "unexpected {absent}");
    }
    assert_eq!(param(list, "price__gte")["schema"]["type"], "integer");
    assert_eq!(param(list, "price__gte")["in"], "query");
    assert_eq!(param(list, "price__gte")["required"], false);
    assert_eq!(param(list, "on_sale")["schema"]["type"], "boolean");
    assert_eq!(param(list, "category__isnull")["schema"]["type"], "boolean");
    assert_eq!(param(list, "price__in")["schema"]["type"], "string");
    assert_eq!(param(list, "page_size")["schema"]["maximum"], 50);
    let search = param(list, "search")["description"].as_str().unwrap();
    assert!(search.contains("`name`") && search.contains("`description`"));
    let ordering = param(list, "ordering")["description"].as_str().unwrap();
    assert!(ordering.contains("`-price`") && ordering.contains("`created_at`"));
    assert!(!ordering.contains("`on_sale`"));
}

#[tokio::test]
async fn limit_offset_lists_take_limit_and_offset() {
    let doc = document().await;
    let names = param_names(&doc["paths"]["/shop/items/"]["get"]);
    assert!(names.contains(&"limit".to_owned()) && names.contains(&"offset".to_owned()));
    assert!(!names.contains(&"page".to_owned()));
}

#[tokio::test]
async fn page_number_list_answers_the_drf_envelope() {
    let doc = document().await;
    let ok = &doc["paths"]["/mall/items/"]["get"]["responses"]["200"];
    assert_eq!(
        ok["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/PaginatedItemsList"
    );
    let page = &doc["components"]["schemas"]["PaginatedItemsList"];
    assert_eq!(
        page["required"],
        json!(["count", "next", "previous", "results"])
    );
    assert_eq!(
        page["properties"]["next"]["type"],
        json!(["string", "null"])
    );
    assert_eq!(
        page["properties"]["results"]["items"]["$ref"],
        "#/components/schemas/Items"
    );
}

#[tokio::test]
async fn cursor_lists_have_no_count_and_no_ordering() {
    let vs = ModelViewSet::<Item>::new(sqlite_memory().await)
        .pagination(CursorPagination::new(10, "-id"));
    let doc = serde_json::to_value(vs.openapi("/items")).unwrap();
    let list = &doc["paths"]["/items/"]["get"];
    let names = param_names(list);
    assert!(names.contains(&"cursor".to_owned()));
    assert!(!names.contains(&"ordering".to_owned()) && !names.contains(&"page".to_owned()));
    let page = &doc["components"]["schemas"]["CursorItemsList"];
    assert!(page["properties"].get("count").is_none());
    assert!(page["properties"].get("results").is_some());
}

#[tokio::test]
async fn unpaginated_lists_answer_a_plain_array() {
    let vs = ModelViewSet::<Item>::new(sqlite_memory().await).pagination(Pagination::None);
    let doc = serde_json::to_value(vs.openapi("/items")).unwrap();
    let list = &doc["paths"]["/items/"]["get"];
    assert_eq!(
        list["responses"]["200"]["content"]["application/json"]["schema"],
        json!({"type": "array", "items": {"$ref": "#/components/schemas/Items"}})
    );
    assert!(!param_names(list).iter().any(|n| n.starts_with("page")));
    assert!(list["responses"].get("404").is_none());
}

#[tokio::test]
async fn input_schema_requires_fields_without_default_that_are_not_nullable() {
    let doc = document().await;
    let input = &doc["components"]["schemas"]["ItemsInput"];
    assert_eq!(input["required"], json!(["name", "price"]));
    let props = input["properties"].as_object().unwrap();
    let mut names: Vec<&str> = props.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "category",
            "description",
            "name",
            "on_sale",
            "price",
            "size"
        ]
    );
    assert_eq!(props["on_sale"]["default"], true);
    assert_eq!(props["name"]["maxLength"], 20);
    assert_eq!(props["name"]["minLength"], 1, "blank text is refused");
    assert!(props["description"].get("minLength").is_none());
    let create = &doc["paths"]["/mall/items/"]["post"];
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ItemsInput"
    );
    let patched = &doc["components"]["schemas"]["PatchedItemsInput"];
    assert!(patched.get("required").is_none());
}

#[tokio::test]
async fn output_schema_has_every_field_typed_with_null_when_nullable() {
    let doc = document().await;
    let items = &doc["components"]["schemas"]["Items"];
    let props = &items["properties"];
    assert_eq!(props.as_object().unwrap().len(), 9);
    assert_eq!(props["category"]["type"], json!(["integer", "null"]));
    assert_eq!(props["price"]["type"], "integer");
    assert_eq!(props["price"]["minimum"], 0);
    assert_eq!(props["on_sale"]["type"], "boolean");
    assert_eq!(props["created_at"]["type"], "string");
    assert_eq!(props["created_at"]["format"], "date-time");
    assert_eq!(props["size"]["enum"], json!(["S", "M", "L"]));
    for read_only in ["id", "owner_id", "created_at"] {
        assert_eq!(props[read_only]["readOnly"], true, "{read_only}");
    }
    assert!(props["name"].get("readOnly").is_none());
}

#[tokio::test]
async fn errors_use_the_drf_shapes() {
    let doc = document().await;
    let create = &doc["paths"]["/mall/items/"]["post"]["responses"];
    let schema =
        |status: &str| create[status]["content"]["application/json"]["schema"]["$ref"].clone();
    assert_eq!(schema("400"), "#/components/schemas/ValidationError");
    assert_eq!(schema("401"), "#/components/schemas/Error");
    assert_eq!(schema("403"), "#/components/schemas/Error");
    assert!(create.get("201").is_some());
    let destroy = &doc["paths"]["/mall/items/{id}/"]["delete"]["responses"];
    assert!(destroy.get("204").is_some() && destroy.get("404").is_some());
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], json!(["detail", "code"]));
    let validation = &doc["components"]["schemas"]["ValidationError"];
    assert_eq!(
        validation["additionalProperties"],
        json!({"type": "array", "items": {"type": "string"}})
    );
}

#[tokio::test]
async fn jwt_security_scheme_is_declared_and_applied() {
    let doc = document().await;
    let scheme = &doc["components"]["securitySchemes"]["jwtAuth"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(scheme["bearerFormat"], "JWT");
    assert!(
        scheme["description"]
            .as_str()
            .unwrap()
            .contains("JWT <token>")
    );
    assert_eq!(
        doc["paths"]["/mall/items/"]["get"]["security"],
        json!([{"jwtAuth": []}])
    );
    assert_eq!(
        doc["paths"]["/auth/logout/"]["post"]["security"],
        json!([{"jwtAuth": []}])
    );
    assert!(
        doc["paths"]["/auth/token/"]["post"]
            .get("security")
            .is_none()
    );
}

#[tokio::test]
async fn token_endpoints_are_described() {
    let doc = document().await;
    let paths = &doc["paths"];
    for path in [
        "/auth/token/",
        "/auth/token/refresh/",
        "/auth/token/verify/",
        "/auth/logout/",
        "/auth/logout-all/",
    ] {
        assert!(paths[path].get("post").is_some(), "{path}");
    }
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["TokenObtain"]["required"],
        json!(["username", "password"])
    );
    assert_eq!(
        schemas["TokenPair"]["required"],
        json!(["token", "refresh"])
    );
    assert_eq!(
        schemas["TokenRefresh"]["anyOf"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        paths["/auth/token/"]["post"]["responses"]["400"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/ValidationError"
    );
    assert_eq!(doc["tags"], json!([{"name": "items"}, {"name": "auth"}]));
}

async fn get(app: axum::Router, uri: &str) -> (StatusCode, String, Vec<u8>) {
    let response = app
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, body.to_vec())
}

async fn built_doc() -> utoipa::openapi::OpenApi {
    let vs = ModelViewSet::<Item>::new(sqlite_memory().await);
    ApiDoc::new("Served", "1")
        .merge(vs.openapi("/items"))
        .merge(token_routes_openapi("/auth"))
        .build()
}

#[tokio::test]
async fn docs_routes_serve_the_document_as_json() {
    let doc = built_doc().await;
    let expected = serde_json::to_value(&doc).unwrap();
    let (status, content_type, body) = get(docs_routes(doc), "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    let served: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(served, expected);
}

#[tokio::test]
async fn docs_routes_serve_a_scalar_page_reading_the_document() {
    for uri in ["/docs", "/docs/"] {
        let (status, content_type, body) = get(docs_routes(built_doc().await), uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(content_type.starts_with("text/html"));
        let page = String::from_utf8(body).unwrap();
        assert!(page.contains(r#"data-url="/openapi.json""#));
        assert!(page.contains("@scalar/api-reference"));
        assert!(page.contains("<title>Served</title>"));
    }
}

#[tokio::test]
async fn docs_routes_at_a_prefix_point_the_page_there() {
    let app = wxrest::openapi::docs_routes_at("/api/", built_doc().await);
    let (status, _, _) = get(app.clone(), "/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, page) = get(app, "/api/docs").await;
    assert!(
        String::from_utf8(page)
            .unwrap()
            .contains(r#"data-url="/api/openapi.json""#)
    );
}

/// Validates the document with `openapi-spec-validator` (Python). Skipped when it is not
/// installed, except in CI (`CI=true`), where a missing validator fails the test.
#[tokio::test]
async fn document_is_valid_openapi_3_1() {
    let available = std::process::Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "openapi-spec-validator is required in CI: pip install openapi-spec-validator==0.9.0"
            );
        }
        eprintln!(
            "skipping: python3 -m openapi_spec_validator is not available \
             (pip install openapi-spec-validator==0.9.0)"
        );
        return;
    }
    let doc = document().await;
    let path = std::env::temp_dir().join(format!("wxrest-openapi-{}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let output = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(
        output.status.success(),
        "openapi-spec-validator refused the document:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
