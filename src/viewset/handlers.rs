//! The viewset's axum handlers: permission first, then the object (404 outside the scope),
//! then the object permission, then the body — DRF's order.

use std::sync::Arc;

use axum::extract::{FromRequest, Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, on};
use axum::{Json, Router};
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use serde_json::{Map, Value, json};
use sqlx::any::AnyRow;

use super::pagination::{Cursor, Pagination, invalid_cursor, invalid_page, page_url, positive};
use super::query::{self, Where, order_sql, parse_time, row_to_json};
use super::rows::{self, apply_auto, check_references, fetch_one};
use super::schema::{Kind, Model};
use super::validation::{Mode, validate};
use super::{Action, ActionContext, Config};
use crate::auth::{AuthError, AuthState, Identity, RequestContext};
use crate::db::{SqlValue, bind_all};
use crate::error::{ApiError, BackendError};
use crate::parsers::JsonBody;

type Cfg<T> = State<Arc<Config<T>>>;

pub(super) fn router<T: Model>(config: Config<T>, prefix: &str) -> Router {
    let prefix = prefix.trim_end_matches('/');
    let auth = config.auth.clone();
    let has = |a: Action| config.actions.contains(&a);
    let mut collection: MethodRouter<Arc<Config<T>>> = MethodRouter::new();
    if has(Action::List) {
        collection = collection.get(list::<T>);
    }
    if has(Action::Create) {
        collection = collection.post(create::<T>);
    }
    let mut detail: MethodRouter<Arc<Config<T>>> = MethodRouter::new();
    if has(Action::Retrieve) {
        detail = detail.get(retrieve::<T>);
    }
    if has(Action::Update) {
        detail = detail.put(update::<T>);
    }
    if has(Action::PartialUpdate) {
        detail = detail.patch(partial_update::<T>);
    }
    if has(Action::Destroy) {
        detail = detail.delete(destroy::<T>);
    }
    let mut router: Router<Arc<Config<T>>> =
        Router::new().route(&format!("{prefix}/"), collection.clone());
    if !prefix.is_empty() {
        router = router.route(prefix, collection);
    }
    router = router
        .route(&format!("{prefix}/{{id}}"), detail.clone())
        .route(&format!("{prefix}/{{id}}/"), detail);
    for (index, extra) in config.extras.iter().enumerate() {
        let filter = axum::routing::MethodFilter::try_from(extra.method.clone())
            .unwrap_or(axum::routing::MethodFilter::POST);
        if extra.detail {
            let route = on(
                filter,
                move |s: Cfg<T>, Path(id): Path<String>, req: Request| {
                    extra_action::<T>(s, Some(id), index, req)
                },
            );
            router = router
                .route(&format!("{prefix}/{{id}}/{}", extra.name), route.clone())
                .route(&format!("{prefix}/{{id}}/{}/", extra.name), route);
        } else {
            let route = on(filter, move |s: Cfg<T>, req: Request| {
                extra_action::<T>(s, None, index, req)
            });
            router = router
                .route(&format!("{prefix}/{}", extra.name), route.clone())
                .route(&format!("{prefix}/{}/", extra.name), route);
        }
    }
    let router = router.with_state(Arc::new(config));
    match auth {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

fn answer(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

/// DRF's `check_permissions`: 401 for anonymous callers (when a challenge exists), else 403.
fn allow<T: Model>(
    cfg: &Config<T>,
    parts: &Parts,
    action: Action,
) -> Result<Option<Identity>, ApiError> {
    let identity = parts.extensions.get::<Identity>().cloned();
    let ctx = RequestContext::new(parts, identity.as_ref()).with_action(action.name());
    match cfg.permission_of(action).check(&ctx) {
        Ok(()) => Ok(identity),
        Err(denied) => Err(deny(parts, identity.is_some(), denied.message)),
    }
}

fn deny(
    parts: &Parts,
    authenticated: bool,
    message: Option<std::borrow::Cow<'static, str>>,
) -> ApiError {
    let state = parts
        .extensions
        .get::<AuthState>()
        .cloned()
        .unwrap_or_default();
    if authenticated {
        state.reject(AuthError::PermissionDenied(message))
    } else {
        state.reject(AuthError::NotAuthenticated)
    }
}

/// DRF's `check_object_permissions`.
fn allow_object<T: Model>(
    cfg: &Config<T>,
    parts: &Parts,
    identity: Option<&Identity>,
    action: Action,
    object: &T,
) -> Result<(), ApiError> {
    let ctx = RequestContext::new(parts, identity).with_action(action.name());
    cfg.permission_of(action)
        .check_object(&ctx, object)
        .map_err(|denied| deny(parts, identity.is_some(), denied.message))
}

fn to_model<T: Model>(map: Map<String, Value>) -> Result<T, ApiError> {
    serde_json::from_value(Value::Object(map)).map_err(|e| {
        tracing::error!(error = %e, "a row does not match its model");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "A server error occurred.",
        )
    })
}

fn to_json<T: Model>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// Runs the related-objects hook and renders.
async fn render_all<T: Model>(cfg: &Config<T>, objects: Vec<T>) -> Result<Vec<Value>, ApiError> {
    let objects = match &cfg.related {
        Some(load) => load(cfg.db.clone(), objects).await?,
        None => objects,
    };
    Ok(objects.iter().map(to_json).collect())
}

async fn render_one<T: Model>(cfg: &Config<T>, object: T) -> Result<Value, ApiError> {
    Ok(render_all(cfg, vec![object])
        .await?
        .pop()
        .unwrap_or(Value::Null))
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found())
}

/// The object `id` within the caller's scope, as `T`; 404 when missing or out of scope.
async fn get_object<T: Model>(
    cfg: &Config<T>,
    identity: Option<&Identity>,
    id: i64,
) -> Result<T, ApiError> {
    let scope = cfg.scope_where(identity).ok_or_else(ApiError::not_found)?;
    let map = fetch_one(&cfg.db, &cfg.table, id, scope)
        .await?
        .ok_or_else(ApiError::not_found)?;
    to_model(map)
}

/// DRF's `get_object`: the action's permission, the object within the caller's scope (404
/// otherwise), then the object permission.
async fn checked_object<T: Model>(
    cfg: &Config<T>,
    parts: &Parts,
    action: Action,
    id: &str,
) -> Result<(Option<Identity>, T), ApiError> {
    let identity = allow(cfg, parts, action)?;
    let object: T = get_object(cfg, identity.as_ref(), parse_id(id)?).await?;
    allow_object(cfg, parts, identity.as_ref(), action, &object)?;
    Ok((identity, object))
}

async fn body(parts: Parts, body: axum::body::Body) -> Result<Map<String, Value>, ApiError> {
    let JsonBody(map) = JsonBody::from_request(Request::from_parts(parts, body), &()).await?;
    Ok(map)
}

async fn list<T: Model>(State(cfg): Cfg<T>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    answer(list_cached(&cfg, &parts).await)
}

fn json_bytes(body: Bytes) -> Response {
    ([(http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn list_cached<T: Model>(cfg: &Config<T>, parts: &Parts) -> Result<Response, ApiError> {
    let identity = allow(cfg, parts, Action::List)?;
    let render = |value: &Value| Bytes::from(serde_json::to_vec(value).unwrap_or_default());
    // Only what the list reads: junk parameters neither make new cache entries nor travel in
    // the page's links.
    let params = query::recognised(
        &cfg.table.schema,
        cfg.pagination.parameters(),
        query::params(parts.uri.query()),
    );
    let Some(cache) = &cfg.cache else {
        return Ok(json_bytes(render(
            &list_inner(cfg, parts, &params, identity).await?,
        )));
    };
    let table = cfg.table.schema.table;
    let version = match cache.version(table).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, table, "list cache unavailable; reading the database");
            return Ok(json_bytes(render(
                &list_inner(cfg, parts, &params, identity).await?,
            )));
        }
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    let key = format!(
        "{table}\u{1f}{version}\u{1f}{:?}\u{1f}{}\u{1f}{}\u{1f}{}?{query}",
        cfg.scope_owner(identity.as_ref()),
        header("host"),
        header("x-forwarded-proto"),
        parts.uri.path(),
    );
    if let Some(page) = cache.get(&key) {
        return Ok(json_bytes(page));
    }
    let page = render(&list_inner(cfg, parts, &params, identity).await?);
    cache.put(key, page.clone());
    Ok(json_bytes(page))
}

async fn list_inner<T: Model>(
    cfg: &Config<T>,
    parts: &Parts,
    params: &[(String, String)],
    identity: Option<Identity>,
) -> Result<Value, ApiError> {
    let schema = &cfg.table.schema;
    let d = cfg.table.dialect;
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(mut clause) = cfg.scope_where(identity.as_ref()) else {
        return Ok(empty_list(&cfg.pagination));
    };
    query::add_filters(schema, d, params, &mut clause)?;
    if let Some(search) = param("search") {
        query::add_search(schema, d, search, &mut clause)?;
    }
    let ordering = query::ordering(schema, param("ordering"));
    match &cfg.pagination {
        Pagination::None => {
            let rows = fetch_rows(cfg, &clause, &order_sql(d, &ordering, false), None).await?;
            Ok(Value::Array(models::<T>(cfg, &rows).await?))
        }
        Pagination::PageNumber(p) => {
            let count = count(cfg, &clause).await?;
            let size = p.page_size(param("page_size"));
            let pages = count.div_ceil(size).max(1);
            let page = match param("page") {
                None => 1,
                Some("last") => pages,
                Some(raw) => positive(Some(raw)).ok_or_else(invalid_page)?,
            };
            if page > pages {
                return Err(invalid_page());
            }
            let limit = format!(" LIMIT {size} OFFSET {}", (page - 1) * size);
            let rows =
                fetch_rows(cfg, &clause, &order_sql(d, &ordering, false), Some(&limit)).await?;
            let next = (page < pages)
                .then(|| page_url(parts, params, &[("page", Some((page + 1).to_string()))]));
            let previous = match page {
                1 => None,
                2 => Some(page_url(parts, params, &[("page", None)])),
                _ => Some(page_url(
                    parts,
                    params,
                    &[("page", Some((page - 1).to_string()))],
                )),
            };
            Ok(page_json(
                Some(count),
                next,
                previous,
                models::<T>(cfg, &rows).await?,
            ))
        }
        Pagination::LimitOffset(p) => {
            let count = count(cfg, &clause).await?;
            let limit = positive(param("limit")).map_or(p.default, |l| l.min(p.max));
            let offset = param("offset")
                .and_then(|o| o.trim().parse::<u64>().ok())
                .unwrap_or(0);
            let sql_limit = format!(" LIMIT {limit} OFFSET {offset}");
            let rows = fetch_rows(
                cfg,
                &clause,
                &order_sql(d, &ordering, false),
                Some(&sql_limit),
            )
            .await?;
            let limit_s = Some(limit.to_string());
            let next = (offset + limit < count).then(|| {
                page_url(
                    parts,
                    params,
                    &[
                        ("limit", limit_s.clone()),
                        ("offset", Some((offset + limit).to_string())),
                    ],
                )
            });
            let previous = match offset {
                0 => None,
                o if o <= limit => Some(page_url(
                    parts,
                    params,
                    &[("limit", limit_s.clone()), ("offset", None)],
                )),
                o => Some(page_url(
                    parts,
                    params,
                    &[
                        ("limit", limit_s.clone()),
                        ("offset", Some((o - limit).to_string())),
                    ],
                )),
            };
            Ok(page_json(
                Some(count),
                next,
                previous,
                models::<T>(cfg, &rows).await?,
            ))
        }
        Pagination::Cursor(p) => {
            let field = schema.get(p.field).ok_or_else(invalid_cursor)?;
            let cursor = param("cursor").map(Cursor::decode).transpose()?;
            let reverse = cursor.as_ref().is_some_and(|c| c.r);
            if let Some(c) = &cursor {
                let value = match (field.kind, &c.v) {
                    (Kind::Int, Value::Number(n)) => n.as_i64().map(SqlValue::Int),
                    (Kind::Timestamp, Value::String(s)) => parse_time(s).map(SqlValue::Int),
                    (Kind::Text, Value::String(s)) => Some(SqlValue::Text(s.clone())),
                    _ => None,
                }
                .ok_or_else(invalid_cursor)?;
                // Forward on an ascending order means "greater than the boundary".
                let greater = p.descending == reverse;
                let op = if greater { ">" } else { "<" };
                let col = d.quote_ident(p.field);
                let id = d.quote_ident("id");
                let v1 = clause.param(d, value.clone());
                let v2 = clause.param(d, value);
                let i = clause.param(d, SqlValue::Int(c.id));
                clause.push(format!(
                    "({col} {op} {v1} OR ({col} = {v2} AND {id} {op} {i}))"
                ));
            }
            let ordering = [(p.field, p.descending), ("id", p.descending)];
            let limit = format!(" LIMIT {}", p.size + 1);
            let mut rows = fetch_rows(
                cfg,
                &clause,
                &order_sql(d, &ordering, reverse),
                Some(&limit),
            )
            .await?;
            let more = rows.len() as u64 > p.size;
            rows.truncate(p.size as usize);
            if reverse {
                rows.reverse();
            }
            let maps = rows
                .iter()
                .map(|r| row_to_json(schema, r))
                .collect::<Result<Vec<_>, _>>()
                .map_err(BackendError::from)?;
            let boundary = |m: &Map<String, Value>, r: bool| {
                Cursor {
                    v: m.get(p.field).cloned().unwrap_or(Value::Null),
                    id: m.get("id").and_then(Value::as_i64).unwrap_or(0),
                    r,
                }
                .encode()
            };
            let has_next = if reverse { cursor.is_some() } else { more };
            let has_previous = if reverse { more } else { cursor.is_some() };
            let next = maps
                .last()
                .filter(|_| has_next)
                .map(|m| page_url(parts, params, &[("cursor", Some(boundary(m, false)))]));
            let previous = maps
                .first()
                .filter(|_| has_previous)
                .map(|m| page_url(parts, params, &[("cursor", Some(boundary(m, true)))]));
            let objects = maps
                .into_iter()
                .map(to_model::<T>)
                .collect::<Result<Vec<_>, _>>()?;
            let results = render_all(cfg, objects).await?;
            Ok(page_json(None, next, previous, results))
        }
    }
}

fn empty_list(pagination: &Pagination) -> Value {
    match pagination {
        Pagination::None => json!([]),
        Pagination::Cursor(_) => page_json(None, None, None, Vec::new()),
        _ => page_json(Some(0), None, None, Vec::new()),
    }
}

fn page_json(
    count: Option<u64>,
    next: Option<String>,
    previous: Option<String>,
    results: Vec<Value>,
) -> Value {
    let mut body = Map::new();
    if let Some(count) = count {
        body.insert("count".into(), json!(count));
    }
    body.insert("next".into(), json!(next));
    body.insert("previous".into(), json!(previous));
    body.insert("results".into(), Value::Array(results));
    Value::Object(body)
}

async fn count<T: Model>(cfg: &Config<T>, clause: &Where) -> Result<u64, ApiError> {
    let sql = format!("SELECT COUNT(*) FROM {}{}", cfg.table.table, clause.sql());
    let n: i64 = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &clause.binds)
        .fetch_one(cfg.db.pool())
        .await
        .and_then(|row| sqlx::Row::try_get(&row, 0))
        .map_err(BackendError::from)?;
    Ok(n.max(0) as u64)
}

async fn fetch_rows<T: Model>(
    cfg: &Config<T>,
    clause: &Where,
    order: &str,
    limit: Option<&str>,
) -> Result<Vec<AnyRow>, ApiError> {
    let sql = format!(
        "SELECT {} FROM {}{}{}{}",
        cfg.table.select,
        cfg.table.table,
        clause.sql(),
        order,
        limit.unwrap_or("")
    );
    Ok(
        bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), &clause.binds)
            .fetch_all(cfg.db.pool())
            .await
            .map_err(BackendError::from)?,
    )
}

async fn models<T: Model>(cfg: &Config<T>, rows: &[AnyRow]) -> Result<Vec<Value>, ApiError> {
    let objects = rows
        .iter()
        .map(|row| {
            let map = row_to_json(&cfg.table.schema, row).map_err(BackendError::from)?;
            to_model::<T>(map)
        })
        .collect::<Result<Vec<T>, ApiError>>()?;
    render_all(cfg, objects).await
}

async fn create<T: Model>(State(cfg): Cfg<T>, req: Request) -> Response {
    answer(create_inner(&cfg, req).await)
}

async fn create_inner<T: Model>(cfg: &Config<T>, req: Request) -> Result<Response, ApiError> {
    let (parts, raw) = req.into_parts();
    let identity = allow(cfg, &parts, Action::Create)?;
    let data = body(parts, raw).await?;
    let schema = &cfg.table.schema;
    let mut values = validate(schema, &data, Mode::Create)?;
    if let Some(scope) = &cfg.scope {
        let owner = identity
            .as_ref()
            .ok_or_else(|| ApiError::from(AuthError::NotAuthenticated))?;
        values.set(scope.field, SqlValue::Int(owner.user_id));
    }
    apply_auto(schema, &mut values, true);
    check_references(&cfg.db, schema, &values).await?;
    let ctx = cfg.write_context(identity, data);
    let id = match &cfg.on_create {
        Some(hook) => hook(ctx, values).await?,
        None => ctx.insert(&values).await?,
    };
    cfg.touch().await;
    let map = fetch_one(&cfg.db, &cfg.table, id, Where::default())
        .await?
        .ok_or_else(ApiError::not_found)?;
    let object: T = to_model(map)?;
    Ok((StatusCode::CREATED, Json(render_one(cfg, object).await?)).into_response())
}

async fn retrieve<T: Model>(State(cfg): Cfg<T>, Path(id): Path<String>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    answer(
        async {
            let (_, object) = checked_object(&cfg, &parts, Action::Retrieve, &id).await?;
            Ok(Json(render_one(&cfg, object).await?).into_response())
        }
        .await,
    )
}

async fn update<T: Model>(s: Cfg<T>, Path(id): Path<String>, req: Request) -> Response {
    answer(write::<T>(s.0, id, req, Action::Update).await)
}

async fn partial_update<T: Model>(s: Cfg<T>, Path(id): Path<String>, req: Request) -> Response {
    answer(write::<T>(s.0, id, req, Action::PartialUpdate).await)
}

async fn write<T: Model>(
    cfg: Arc<Config<T>>,
    id: String,
    req: Request,
    action: Action,
) -> Result<Response, ApiError> {
    let (parts, raw) = req.into_parts();
    let (identity, object) = checked_object(&cfg, &parts, action, &id).await?;
    let id = parse_id(&id)?;
    let data = body(parts, raw).await?;
    let schema = &cfg.table.schema;
    let mode = if action == Action::Update {
        Mode::Update
    } else {
        Mode::Partial
    };
    let mut values = validate(schema, &data, mode)?;
    apply_auto(schema, &mut values, false);
    check_references(&cfg.db, schema, &values).await?;
    let ctx = cfg.write_context(identity.clone(), data);
    match &cfg.on_update {
        Some(hook) => hook(ctx, object, values).await?,
        None => ctx.update(id, &values).await?,
    }
    cfg.touch().await;
    let object: T = get_object(&cfg, identity.as_ref(), id).await?;
    Ok(Json(render_one(&cfg, object).await?).into_response())
}

async fn destroy<T: Model>(State(cfg): Cfg<T>, Path(id): Path<String>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    answer(
        async {
            let (identity, object) = checked_object(&cfg, &parts, Action::Destroy, &id).await?;
            let id = parse_id(&id)?;
            let ctx = cfg.write_context(identity, Map::new());
            match &cfg.on_destroy {
                Some(hook) => hook(ctx, object).await?,
                None => rows::delete(&cfg.db, &cfg.table.schema, id).await?,
            }
            cfg.touch().await;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

/// An extra action: a detail one (`id` given) gets its object as `retrieve` would.
async fn extra_action<T: Model>(
    State(cfg): Cfg<T>,
    id: Option<String>,
    index: usize,
    req: Request,
) -> Response {
    answer(
        async {
            let extra = &cfg.extras[index];
            let action = Action::Custom(extra.name);
            let (parts, raw) = req.into_parts();
            let (identity, object) = match &id {
                Some(id) => {
                    let (identity, object) = checked_object(&cfg, &parts, action, id).await?;
                    (identity, Some(object))
                }
                None => (allow(&cfg, &parts, action)?, None),
            };
            let data = body(parts, raw).await?;
            let ctx = ActionContext {
                ctx: cfg.write_context(identity, data.clone()),
                object,
                data,
            };
            let response = (extra.handler)(ctx).await;
            if extra.method != http::Method::GET {
                cfg.touch().await;
            }
            response
        }
        .await,
    )
}
