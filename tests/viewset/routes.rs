//! ModelViewSet as a specification, over HTTP-shaped requests (`oneshot`) on every backend:
//! lookups, search, ordering, pagination, validation, permissions, scoping, extra actions,
//! injection.

use crate::auth_fixtures::{staff, user};
use crate::databases;
use crate::item::{Item, create_tables, seed};
use crate::oneshot::send;
use axum::Router;
use axum::body::Body;
use axum::response::IntoResponse;
use http::{Method, Request};
use serde_json::{Value, json};
use wxrest::auth::*;
use wxrest::db::Db;
use wxrest::viewset::*;

fn tokens() -> TokenService {
    TokenService::new(crate::auth_fixtures::jwt())
}

struct Env {
    app: Router,
    tokens: TokenService,
    label: String,
    _db: databases::TestDb,
}

impl Env {
    async fn token(&self, who: &str) -> String {
        let u = match who {
            "alice" => user(1, "alice"),
            "bob" => user(2, "bob"),
            _ => staff(3, "boss"),
        };
        format!("JWT {}", self.tokens.issue(&u).await.unwrap().token)
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        who: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "shop.test");
        if let Some(who) = who {
            b = b.header("authorization", self.token(who).await);
        }
        let req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(v.to_string())),
            None => b.body(Body::empty()),
        }
        .unwrap();
        let (status, _, body) = send(&self.app, req).await;
        (status.as_u16(), body)
    }

    /// Asserts the status `method uri` answers `who`.
    async fn expect(
        &self,
        method: Method,
        uri: &str,
        who: Option<&str>,
        body: Option<Value>,
        status: u16,
    ) {
        let (got, answer) = self.call(method.clone(), uri, who, body).await;
        assert_eq!(
            got, status,
            "{}: {method} {uri} as {who:?}: {answer}",
            self.label
        );
    }

    async fn get(&self, uri: &str) -> (u16, Value) {
        self.call(Method::GET, uri, Some("boss"), None).await
    }

    async fn names(&self, uri: &str) -> Vec<String> {
        let (status, body) = self.get(uri).await;
        assert_eq!(status, 200, "{}: {uri}: {body}", self.label);
        let list = body.get("results").unwrap_or(&body);
        list.as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn viewset(db: Db) -> ModelViewSet<Item> {
    ModelViewSet::<Item>::new(db)
        .permission(IsAuthenticated)
        .permission_for(Action::WRITES, IsAdminUser)
        .pagination(PageNumber::size(2).max(3))
}

async fn envs_with(build: impl Fn(Db) -> ModelViewSet<Item>) -> Vec<Env> {
    let mut out = Vec::new();
    for db in databases::each_backend().await {
        create_tables(&db).await;
        seed(&db).await;
        let tokens = tokens();
        let app = Router::new()
            .merge(build(db.db.clone()).routes_at("/items"))
            .layer(JwtAuthLayer::new(tokens.clone()));
        out.push(Env {
            app,
            tokens,
            label: db.label.clone(),
            _db: db,
        });
    }
    out
}

async fn envs() -> Vec<Env> {
    envs_with(|db| viewset(db).pagination(Pagination::None)).await
}

#[tokio::test]
async fn every_lookup_filters() {
    for env in envs().await {
        let cases: &[(&str, &[&str])] = &[
            ("/items/?price=100", &["Green Tea"]),
            ("/items/?price__gt=180", &["Kettle", "Black Tea"]),
            ("/items/?price__gte=180", &["Kettle", "Black Tea", "Oolong"]),
            ("/items/?price__lt=100", &["Tea Cup"]),
            ("/items/?price__lte=100", &["Green Tea", "Tea Cup"]),
            ("/items/?price__in=80,300", &["Kettle", "Tea Cup"]),
            (
                "/items/?name__icontains=TEA",
                &["Black Tea", "Green Tea", "Tea Cup"],
            ),
            ("/items/?name=Kettle", &["Kettle"]),
            ("/items/?category__isnull=true", &["Kettle"]),
            ("/items/?category=2", &["Tea Cup"]),
            ("/items/?category__in=2", &["Tea Cup"]),
            ("/items/?on_sale=false", &["Tea Cup"]),
            (
                "/items/?on_sale=true&price__lte=180",
                &["Oolong", "Green Tea"],
            ),
            (
                "/items/?created_at__gte=2023-11-14T22:18:00Z",
                &["Kettle", "Oolong"],
            ),
            // Unknown parameters and lookups the model does not allow are ignored.
            (
                "/items/?colour=red&description=x&price__isnull=true&price__gte=",
                &["Kettle", "Black Tea", "Oolong", "Green Tea", "Tea Cup"],
            ),
        ];
        for (uri, want) in cases {
            assert_eq!(env.names(uri).await, *want, "{}: {uri}", env.label);
        }
    }
}

#[tokio::test]
async fn malformed_filter_values_are_400_with_the_parameter() {
    for env in envs().await {
        assert_eq!(
            env.get("/items/?price__gte=abc").await,
            (400, json!({"price__gte": ["Enter a number."]})),
            "{}",
            env.label
        );
        assert_eq!(env.get("/items/?price__in=1,x").await.0, 400);
        assert_eq!(env.get("/items/?category__isnull=maybe").await.0, 400);
        assert_eq!(env.get("/items/?created_at__gte=yesterday").await.0, 400);
    }
}

#[tokio::test]
async fn search_ands_terms_and_ors_fields() {
    for env in envs().await {
        assert_eq!(
            env.names("/items/?search=tea").await,
            ["Black Tea", "Oolong", "Green Tea", "Tea Cup"]
        );
        // Two terms: both must match (in any field).
        assert_eq!(
            env.names("/items/?search=tea%20hangzhou").await,
            ["Green Tea"]
        );
        assert_eq!(env.names("/items/?search=tea,fujian").await, ["Oolong"]);
        // % and _ are literal.
        assert_eq!(env.names("/items/?search=50%25").await, ["Black Tea"]);
        assert_eq!(env.names("/items/?search=l_b").await, ["Kettle"]);
        assert!(env.names("/items/?search=%25%25%25").await.is_empty());
        assert!(env.names("/items/?search=_").await.len() == 1);
    }
}

#[tokio::test]
async fn ordering_is_whitelisted() {
    for env in envs().await {
        assert_eq!(
            env.names("/items/?ordering=price").await,
            ["Tea Cup", "Green Tea", "Oolong", "Black Tea", "Kettle"]
        );
        assert_eq!(
            env.names("/items/?ordering=-name").await,
            ["Tea Cup", "Oolong", "Kettle", "Green Tea", "Black Tea"]
        );
        assert_eq!(
            env.names("/items/?ordering=-created_at,name").await,
            ["Oolong", "Kettle", "Tea Cup", "Black Tea", "Green Tea"]
        );
        // Not orderable (on_sale) and unknown fields are ignored: the default applies.
        assert_eq!(
            env.names("/items/?ordering=on_sale,secret").await,
            env.names("/items/").await
        );
        assert_eq!(
            env.names("/items/?ordering=on_sale,price").await[0],
            "Tea Cup"
        );
    }
}

#[tokio::test]
async fn page_number_pagination_links_keep_other_parameters() {
    for env in envs_with(viewset).await {
        let (status, page) = env.get("/items/?search=tea&page=2").await;
        assert_eq!(status, 200, "{}", env.label);
        assert_eq!(page["count"], 4);
        assert_eq!(page["results"].as_array().unwrap().len(), 2);
        assert_eq!(page["next"], Value::Null);
        assert_eq!(page["previous"], "http://shop.test/items/?search=tea");
        let (_, first) = env.get("/items/?search=tea").await;
        assert_eq!(first["next"], "http://shop.test/items/?search=tea&page=2");
        assert_eq!(first["previous"], Value::Null);
        // page_size is honoured up to the maximum.
        let (_, big) = env.get("/items/?page_size=50").await;
        assert_eq!(big["results"].as_array().unwrap().len(), 3);
        let (_, last) = env.get("/items/?page=last").await;
        assert_eq!(last["results"].as_array().unwrap().len(), 1);
        for bad in ["/items/?page=9", "/items/?page=0", "/items/?page=abc"] {
            assert_eq!(
                env.get(bad).await,
                (404, json!({"detail": "Invalid page.", "code": "not_found"})),
                "{bad}"
            );
        }
        // An empty result is a valid first page.
        let (status, empty) = env.get("/items/?name=nothing").await;
        assert_eq!(
            (status, empty["count"].clone(), empty["results"].clone()),
            (200, json!(0), json!([]))
        );
    }
}

#[tokio::test]
async fn limit_offset_pagination() {
    for env in envs_with(|db| viewset(db).pagination(LimitOffset::new(2, 4))).await {
        let (_, page) = env.get("/items/?ordering=price&limit=2&offset=2").await;
        assert_eq!(page["count"], 5);
        let names: Vec<_> = page["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].clone())
            .collect();
        assert_eq!(names, [json!("Oolong"), json!("Black Tea")]);
        assert_eq!(
            page["next"],
            "http://shop.test/items/?ordering=price&limit=2&offset=4"
        );
        assert_eq!(
            page["previous"],
            "http://shop.test/items/?ordering=price&limit=2"
        );
        let (_, capped) = env.get("/items/?limit=100").await;
        assert_eq!(capped["results"].as_array().unwrap().len(), 4);
    }
}

#[tokio::test]
async fn cursor_pagination_walks_forward_and_back() {
    for env in envs_with(|db| viewset(db).pagination(CursorPagination::new(2, "-created_at"))).await
    {
        let (_, first) = env.get("/items/").await;
        assert!(first.get("count").is_none());
        let page_names = |p: &Value| -> Vec<String> {
            p["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["name"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(page_names(&first), ["Oolong", "Kettle"]);
        assert_eq!(first["previous"], Value::Null);
        let next = first["next"]
            .as_str()
            .unwrap()
            .replace("http://shop.test", "");
        let (_, second) = env.get(&next).await;
        assert_eq!(
            page_names(&second),
            ["Tea Cup", "Black Tea"],
            "{}",
            env.label
        );
        let next = second["next"]
            .as_str()
            .unwrap()
            .replace("http://shop.test", "");
        let (_, third) = env.get(&next).await;
        assert_eq!(page_names(&third), ["Green Tea"]);
        assert_eq!(third["next"], Value::Null);
        let back = third["previous"]
            .as_str()
            .unwrap()
            .replace("http://shop.test", "");
        let (_, again) = env.get(&back).await;
        assert_eq!(page_names(&again), ["Tea Cup", "Black Tea"]);
        assert_eq!(
            env.get("/items/?cursor=not-a-cursor").await,
            (
                404,
                json!({"detail": "Invalid cursor", "code": "not_found"})
            )
        );
    }
}

#[tokio::test]
async fn create_validates_like_a_drf_serializer() {
    for env in envs().await {
        let post = |body: Value| env.call(Method::POST, "/items/", Some("boss"), Some(body));
        assert_eq!(
            post(json!({})).await,
            (
                400,
                json!({"name": ["This field is required."], "price": ["This field is required."]})
            )
        );
        assert_eq!(
            post(json!({"name": "", "price": "ten", "on_sale": "maybe"})).await,
            (
                400,
                json!({
                    "name": ["This field may not be blank."],
                    "price": ["A valid integer is required."],
                    "on_sale": ["Must be a valid boolean."]
                })
            )
        );
        assert_eq!(
            post(json!({"name": "x".repeat(21), "price": -1, "category": 99}))
                .await
                .1,
            json!({
                "name": ["Ensure this field has no more than 20 characters."],
                "price": ["Ensure this value is greater than or equal to 0."]
            })
        );
        assert_eq!(
            post(json!({"name": "Mug", "price": 5, "category": 99})).await,
            (
                400,
                json!({"category": ["Invalid pk \"99\" - object does not exist."]})
            )
        );
        assert_eq!(
            post(json!({"name": null, "price": 5})).await.1,
            json!({"name": ["This field may not be null."]})
        );
        // Unknown and read-only fields are ignored; defaults and auto fields filled.
        let (status, created) =
            post(json!({"name": " Mug ", "price": "12", "id": 999, "owner_id": 7, "hack": 1}))
                .await;
        assert_eq!(status, 201, "{}: {created}", env.label);
        assert_eq!(created["name"], "Mug");
        assert_eq!(created["price"], 12);
        assert_eq!(created["on_sale"], true);
        assert_eq!(created["description"], "");
        assert_ne!(created["id"], 999);
        assert!(created["created_at"].as_str().unwrap().ends_with('Z'));
        let malformed = Request::post("/items/")
            .header("authorization", env.token("boss").await)
            .header("content-type", "application/json")
            .body(Body::from("{oops"))
            .unwrap();
        let (status, _, body) = send(&env.app, malformed).await;
        assert_eq!(status, 400);
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .starts_with("JSON parse error")
        );
    }
}

#[tokio::test]
async fn update_and_partial_update_and_destroy() {
    for env in envs().await {
        let (status, item) = env
            .call(
                Method::PATCH,
                "/items/1/",
                Some("boss"),
                Some(json!({"price": 111})),
            )
            .await;
        assert_eq!(
            (status, item["price"].clone(), item["name"].clone()),
            (200, json!(111), json!("Green Tea"))
        );
        // PATCH validates only what it is given.
        let (status, body) = env
            .call(
                Method::PATCH,
                "/items/1",
                Some("boss"),
                Some(json!({"price": -5})),
            )
            .await;
        assert_eq!(
            (status, body),
            (
                400,
                json!({"price": ["Ensure this value is greater than or equal to 0."]})
            )
        );
        // PUT needs every required field.
        let (status, body) = env
            .call(
                Method::PUT,
                "/items/1/",
                Some("boss"),
                Some(json!({"price": 5})),
            )
            .await;
        assert_eq!(
            (status, body),
            (400, json!({"name": ["This field is required."]}))
        );
        let (status, item) = env
            .call(
                Method::PUT,
                "/items/1/",
                Some("boss"),
                Some(json!({"name": "Jasmine", "price": 5})),
            )
            .await;
        assert_eq!((status, item["name"].clone()), (200, json!("Jasmine")));
        env.expect(Method::DELETE, "/items/1/", Some("boss"), None, 204)
            .await;
        assert_eq!(
            env.get("/items/1/").await,
            (404, json!({"detail": "Not found.", "code": "not_found"}))
        );
        assert_eq!(env.get("/items/abc/").await.0, 404);
        env.expect(Method::DELETE, "/items/1/", Some("boss"), None, 404)
            .await;
    }
}

#[tokio::test]
async fn per_action_permissions_give_401_or_403() {
    for env in envs().await {
        env.expect(Method::GET, "/items/", None, None, 401).await;
        env.expect(Method::GET, "/items/2/", Some("alice"), None, 200)
            .await;
        let (status, body) = env
            .call(
                Method::POST,
                "/items/",
                Some("alice"),
                Some(json!({"name": "x", "price": 1})),
            )
            .await;
        assert_eq!(status, 403, "{}", env.label);
        assert_eq!(body["code"], "permission_denied");
        env.expect(Method::DELETE, "/items/2/", Some("alice"), None, 403)
            .await;
        let (status, body) = env.call(Method::DELETE, "/items/2/", None, None).await;
        assert_eq!(
            (status, body["code"].clone()),
            (401, json!("not_authenticated"))
        );
        // The permission runs before the body is parsed.
        let (status, _) = env.call(Method::POST, "/items/", Some("alice"), None).await;
        assert_eq!(status, 403);
    }
}

#[tokio::test]
async fn object_permissions_guard_detail_actions() {
    let owner_or_staff =
        IsAuthenticated.and(IsAdminUser.or(ObjectPermission::new(|req, item: &Item| {
            req.user_id() == Some(item.owner_id)
        })));
    for env in envs_with(|db| {
        ModelViewSet::<Item>::new(db)
            .permission(owner_or_staff.clone())
            .pagination(Pagination::None)
    })
    .await
    {
        // Item 3 is bob's.
        env.expect(Method::GET, "/items/3/", Some("bob"), None, 200)
            .await;
        let (status, body) = env
            .call(Method::GET, "/items/3/", Some("alice"), None)
            .await;
        assert_eq!(
            (status, body["code"].clone()),
            (403, json!("permission_denied")),
            "{}",
            env.label
        );
        env.expect(
            Method::PATCH,
            "/items/3/",
            Some("alice"),
            Some(json!({"price": 1})),
            403,
        )
        .await;
        env.expect(Method::GET, "/items/3/", Some("boss"), None, 200)
            .await;
    }
}

#[tokio::test]
async fn owner_scoping_hides_other_users_rows() {
    for env in envs_with(|db| {
        ModelViewSet::<Item>::new(db)
            .permission(IsAuthenticated)
            .owner_field_staff_sees_all("owner_id")
            .pagination(Pagination::None)
    })
    .await
    {
        let mine = env
            .call(Method::GET, "/items/", Some("alice"), None)
            .await
            .1;
        let names: Vec<_> = mine
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].clone())
            .collect();
        assert_eq!(
            names,
            [json!("Black Tea"), json!("Oolong"), json!("Green Tea")]
        );
        // Bob's rows are "not found" for alice, for every action.
        env.expect(Method::GET, "/items/3/", Some("alice"), None, 404)
            .await;
        env.expect(
            Method::PATCH,
            "/items/3/",
            Some("alice"),
            Some(json!({"price": 1})),
            404,
        )
        .await;
        env.expect(Method::DELETE, "/items/3/", Some("alice"), None, 404)
            .await;
        // Creating sets the owner, whatever the body says.
        let (status, made) = env
            .call(
                Method::POST,
                "/items/",
                Some("bob"),
                Some(json!({"name": "Tray", "price": 9, "owner_id": 1})),
            )
            .await;
        assert_eq!((status, made["owner_id"].clone()), (201, json!(2)));
        // Staff see everything.
        assert_eq!(
            env.call(Method::GET, "/items/", Some("boss"), None)
                .await
                .1
                .as_array()
                .unwrap()
                .len(),
            6
        );
    }
}

#[tokio::test]
async fn extra_actions_route_and_check_permissions() {
    for env in envs_with(|db| {
        viewset(db)
            .permission_for([Action::Custom("discount")], IsAdminUser)
            .action(
                "discount",
                true,
                Method::POST,
                |ctx: ActionContext<Item>| async move {
                    let item = ctx.object.expect("detail action has its object");
                    let pct = ctx
                        .data
                        .get("percent")
                        .and_then(Value::as_i64)
                        .unwrap_or(10);
                    let mut values = Validated::default();
                    values.set(
                        "price",
                        wxrest::db::SqlValue::Int(item.price * (100 - pct) / 100),
                    );
                    ctx.ctx.update(item.id, &values).await?;
                    Ok(axum::Json(json!({"id": item.id, "percent": pct})).into_response())
                },
            )
            .action(
                "cheapest",
                false,
                Method::GET,
                |ctx: ActionContext<Item>| async move {
                    let row: (i64,) = sqlx::query_as("SELECT MIN(price) FROM items")
                        .fetch_one(ctx.ctx.db.pool())
                        .await
                        .map_err(wxrest::BackendError::from)?;
                    Ok(axum::Json(json!({"price": row.0})).into_response())
                },
            )
    })
    .await
    {
        let (status, body) = env
            .call(
                Method::POST,
                "/items/2/discount/",
                Some("boss"),
                Some(json!({"percent": 20})),
            )
            .await;
        assert_eq!(
            (status, body),
            (200, json!({"id": 2, "percent": 20})),
            "{}",
            env.label
        );
        assert_eq!(env.get("/items/2/").await.1["price"], 200);
        env.expect(Method::POST, "/items/2/discount", Some("alice"), None, 403)
            .await;
        env.expect(Method::POST, "/items/99/discount/", Some("boss"), None, 404)
            .await;
        assert_eq!(
            env.call(Method::GET, "/items/cheapest/", Some("alice"), None)
                .await,
            (200, json!({"price": 80}))
        );
    }
}

#[tokio::test]
async fn routes_answer_with_and_without_trailing_slash() {
    for env in envs().await {
        assert_eq!(env.get("/items").await.0, 200, "{}", env.label);
        assert_eq!(env.get("/items/").await.0, 200);
        assert_eq!(env.get("/items/2").await.0, 200);
        assert_eq!(env.get("/items/2/").await.0, 200);
    }
}

#[tokio::test]
async fn injection_strings_in_every_parameter_leave_the_table_intact() {
    let attacks = [
        "'; DROP TABLE items; --",
        "1 OR 1=1",
        "\" OR \"\"=\"",
        "1); DELETE FROM items; --",
        "%' OR name LIKE '%",
        "\\'; SELECT pg_sleep(1); --",
        "` OR 1=1 #",
    ];
    for env in envs().await {
        for attack in attacks {
            let q: String = form_urlencoded::byte_serialize(attack.as_bytes()).collect();
            for param in [
                "price",
                "price__gte",
                "price__in",
                "name",
                "name__icontains",
                "category__isnull",
                "on_sale",
                "search",
                "ordering",
                "created_at__lte",
                "page",
                attack,
            ] {
                let key: String = form_urlencoded::byte_serialize(param.as_bytes()).collect();
                let (status, body) = env.get(&format!("/items/?{key}={q}")).await;
                assert!(
                    status == 200 || status == 400,
                    "{}: {param}={attack}: {status} {body}",
                    env.label
                );
                if status == 200 && param != "ordering" && param != "page" && param != attack {
                    assert!(
                        body.as_array().unwrap().len() <= 1,
                        "{param}={attack}: {body}"
                    );
                }
            }
            let path: String = form_urlencoded::byte_serialize(attack.as_bytes()).collect();
            assert_eq!(env.get(&format!("/items/{path}/")).await.0, 404);
            let (status, _) = env
                .call(
                    Method::POST,
                    "/items/",
                    Some("boss"),
                    Some(json!({"name": &attack[..attack.len().min(20)], "price": 1})),
                )
                .await;
            assert_eq!(status, 201);
        }
        let (_, all) = env.get("/items/").await;
        assert_eq!(
            all.as_array().unwrap().len(),
            5 + attacks.len(),
            "{}",
            env.label
        );
    }
}

#[tokio::test]
async fn cached_lists_follow_writes_through_the_viewset() {
    let cache = ListCache::memory(16 << 20);
    for env in envs_with(|db| {
        viewset(db)
            .pagination(Pagination::None)
            .cache(cache.clone())
    })
    .await
    {
        assert_eq!(env.names("/items/?price=100").await, ["Green Tea"]);
        // A raw write the cache does not know about: the cached page still answers...
        sqlx::query("UPDATE items SET name = 'Raw Tea' WHERE price = 100")
            .execute(env._db.pool())
            .await
            .unwrap();
        assert_eq!(
            env.names("/items/?price=100").await,
            ["Green Tea"],
            "{}",
            env.label
        );
        // ...until the table is touched,
        cache.touch("items").await.unwrap();
        assert_eq!(env.names("/items/?price=100").await, ["Raw Tea"]);
        // and a write through the viewset is visible to the writer's very next read.
        let (status, _) = env
            .call(
                Method::PATCH,
                "/items/1/",
                Some("boss"),
                Some(json!({"name": "Jade Tea"})),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(env.names("/items/?price=100").await, ["Jade Tea"]);
        let (status, _) = env
            .call(Method::DELETE, "/items/1/", Some("boss"), None)
            .await;
        assert_eq!(status, 204);
        assert!(env.names("/items/?price=100").await.is_empty());
        // Tables are shared by name across test backends here: start the next one clean.
        cache.touch("items").await.unwrap();
    }
}

#[tokio::test]
async fn cached_lists_are_kept_per_owner() {
    for env in envs_with(|db| {
        ModelViewSet::<Item>::new(db)
            .permission(IsAuthenticated)
            .owner_field("owner_id")
            .pagination(Pagination::None)
            .cache(ListCache::memory(16 << 20))
    })
    .await
    {
        let alice = env
            .call(Method::GET, "/items/", Some("alice"), None)
            .await
            .1;
        let bob = env.call(Method::GET, "/items/", Some("bob"), None).await.1;
        assert_eq!(alice.as_array().unwrap().len(), 3, "{}", env.label);
        assert_eq!(bob.as_array().unwrap().len(), 2);
        // Permissions still run before the cache.
        env.expect(Method::GET, "/items/", None, None, 401).await;
    }
}

#[tokio::test]
async fn redis_table_versions_are_shared_between_instances() {
    let Some(url) = databases::redis_url() else {
        return;
    };
    let prefix = databases::unique_prefix("listcache");
    let db = databases::fresh_db("sqlite-file").await;
    create_tables(&db).await;
    seed(&db).await;
    let tokens = tokens();
    let instance = || {
        let cache = ListCache::open(&url)
            .unwrap()
            .prefix(prefix.clone())
            .max_bytes(16 << 20);
        Router::new()
            .merge(
                viewset(db.db.clone())
                    .pagination(Pagination::None)
                    .cache(cache)
                    .routes_at("/items"),
            )
            .layer(JwtAuthLayer::new(tokens.clone()))
    };
    let (a, b) = (instance(), instance());
    let token = format!(
        "JWT {}",
        tokens.issue(&staff(3, "boss")).await.unwrap().token
    );
    let get = |app: Router| {
        let token = token.clone();
        async move {
            let req = Request::get("/items/?price=100")
                .header("authorization", token)
                .body(Body::empty())
                .unwrap();
            send(&app, req).await.2[0]["name"].clone()
        }
    };
    assert_eq!(get(b.clone()).await, "Green Tea");
    let patch = Request::patch("/items/1/")
        .header("authorization", &token)
        .header("content-type", "application/json")
        .body(Body::from(r#"{"name": "Jade Tea"}"#))
        .unwrap();
    assert_eq!(send(&a, patch).await.0, 200);
    // B had the old page cached; A's write bumped the shared version.
    assert_eq!(get(b).await, "Jade Tea");
}

#[tokio::test]
async fn junk_parameters_neither_fill_the_cache_nor_reach_page_links() {
    let cache = ListCache::memory(16 << 20);
    for env in envs_with(|db| viewset(db).cache(cache.clone())).await {
        let (_, first) = env.get("/items/?search=tea").await;
        let size = cache.weighted_size();
        for n in 0..50 {
            let (status, page) = env
                .get(&format!("/items/?junk={n}&search=tea&utm_source=x{n}"))
                .await;
            assert_eq!(status, 200, "{}", env.label);
            // The page another client caches never carries this client's junk.
            assert_eq!(page, first, "{}", env.label);
        }
        assert_eq!(
            cache.weighted_size(),
            size,
            "{}: junk made entries",
            env.label
        );
        assert_eq!(first["next"], "http://shop.test/items/?search=tea&page=2");
        // The junk-first request's own links are clean too, in canonical order.
        let (_, page2) = env.get("/items/?zzz=1&page=2&search=tea&aaa=2").await;
        assert_eq!(page2["previous"], "http://shop.test/items/?search=tea");
        cache.touch("items").await.unwrap();
    }
}

#[tokio::test]
async fn the_list_cache_is_bounded_in_bytes() {
    let budget = 8 * 1024;
    let cache = ListCache::memory(budget);
    for env in envs_with(|db| viewset(db).cache(cache.clone())).await {
        // Many distinct recognised queries, each a cached page.
        for n in 0..200 {
            let (status, _) = env.get(&format!("/items/?price__gte={n}")).await;
            assert_eq!(status, 200, "{}", env.label);
        }
        let used = cache.weighted_size();
        assert!(used <= budget, "{}: {used} bytes cached", env.label);
        assert!(used > 0, "{}: nothing cached", env.label);
        cache.touch("items").await.unwrap();
    }
}
