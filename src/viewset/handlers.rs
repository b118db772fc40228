//! The viewset's axum handlers: permission first, then the object (404 outside the scope),
//! then the object permission, then the body — DRF's order.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, on};
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use serde_json::{Map, Value};

use super::cache::{CachedPage, Change, ViewsetCache};
use super::pagination::{self, ListQuery, Page};
use super::query::{self, Where};
use super::rows::{self, apply_auto, check_references, fetch_one};
use super::schema::Model;
use super::validation::{Mode, validate};
use super::{Action, ActionContext, Config};
use crate::auth::{AuthError, AuthState, Identity, RequestContext};
use crate::db::SqlValue;
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

/// A 500 whose cause (never shown to the client) is logged by the layer answering it.
fn server_error(error: impl std::fmt::Display, what: &'static str) -> ApiError {
    ApiError::server_error().with_cause(format_args!("{what}: {error}"))
}

fn to_model<T: Model>(map: Map<String, Value>) -> Result<T, ApiError> {
    serde_json::from_value(Value::Object(map))
        .map_err(|e| server_error(e, "a row does not match its model"))
}

/// Runs the related-objects hook and renders each object to JSON bytes, once.
async fn render_all<T: Model>(cfg: &Config<T>, objects: Vec<T>) -> Result<Vec<Bytes>, ApiError> {
    let objects = match &cfg.related {
        Some(load) => load(cfg.db.clone(), objects).await?,
        None => objects,
    };
    objects
        .iter()
        .map(|o| {
            serde_json::to_vec(o)
                .map(Bytes::from)
                .map_err(|e| server_error(e, "a model does not serialise"))
        })
        .collect()
}

/// Rows read by the schema, as the model renders them.
async fn render_rows<T: Model>(
    cfg: &Config<T>,
    rows: Vec<Map<String, Value>>,
) -> Result<Vec<Bytes>, ApiError> {
    let objects = rows
        .into_iter()
        .map(to_model::<T>)
        .collect::<Result<Vec<T>, _>>()?;
    render_all(cfg, objects).await
}

async fn render_one<T: Model>(cfg: &Config<T>, object: T) -> Result<Bytes, ApiError> {
    Ok(render_all(cfg, vec![object])
        .await?
        .pop()
        .unwrap_or_else(|| Bytes::from_static(b"null")))
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
    answer(list_response(&cfg, &parts).await)
}

fn json_bytes(body: Bytes) -> Response {
    ([(http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A page's JSON: `head`, the bodies joined by `,`, `tail`.
fn assemble<'b, I>(head: &[u8], bodies: I, tail: &[u8]) -> Bytes
where
    I: IntoIterator<Item = &'b Bytes>,
    I::IntoIter: Clone,
{
    let bodies = bodies.into_iter();
    let len = head.len() + tail.len() + bodies.clone().map(|b| b.len() + 1).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(head);
    for (i, body) in bodies.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(body);
    }
    out.extend_from_slice(tail);
    Bytes::from(out)
}

async fn list_response<T: Model>(cfg: &Config<T>, parts: &Parts) -> Result<Response, ApiError> {
    let identity = allow(cfg, parts, Action::List)?;
    // Only what the list reads: junk parameters neither make new cache entries nor travel in
    // the page's links.
    let params = query::recognised(
        &cfg.table.schema,
        &cfg.pagination,
        query::params(parts.uri.query()),
    );
    if let Some(cache) = &cfg.cache {
        match cached_list(cfg, cache, parts, &params, identity.as_ref()).await {
            Ok(body) => return Ok(json_bytes(body)),
            Err(CacheMiss::Api(e)) => return Err(e),
            Err(CacheMiss::Backend(e)) => {
                let table = cfg.table.schema.table;
                tracing::warn!(error = %e, table, "list cache unavailable; reading the database");
            }
        }
    }
    let page = list_page(cfg, parts, &params, identity.as_ref()).await?;
    let head = page.head.render(&pagination::origin(parts));
    let bodies = render_rows(cfg, page.rows).await?;
    Ok(json_bytes(assemble(&head, &bodies, page.head.tail())))
}

/// Why a cached list did not answer: the request's own error, or the cache's backend (then the
/// list reads the database).
enum CacheMiss {
    Api(ApiError),
    Backend(BackendError),
}

impl From<ApiError> for CacheMiss {
    fn from(e: ApiError) -> Self {
        CacheMiss::Api(e)
    }
}

impl From<BackendError> for CacheMiss {
    fn from(e: BackendError) -> Self {
        CacheMiss::Backend(e)
    }
}

/// A list through the cache (see [`super::cache`]): the page's versions, then the page (ids,
/// count, links) from the cache or the database, then its rows' bodies from the cache or one
/// `WHERE id IN (...)`. The page is kept under what decides it and nothing else: this viewset,
/// the versions, which rows the caller sees, the path and the canonical parameters; its links
/// get the request's own origin when it answers.
async fn cached_list<T: Model>(
    cfg: &Config<T>,
    cache: &ViewsetCache,
    parts: &Parts,
    params: &[(String, String)],
    identity: Option<&Identity>,
) -> Result<Bytes, CacheMiss> {
    let schema = &cfg.table.schema;
    let table = schema.table;
    let mut columns = query::dependencies(schema, params);
    columns.extend(cfg.scope.as_ref().map(|s| s.field));
    columns.extend(cfg.pagination.cursor_field());
    let stamp = cache.lists.stamp(table, &columns).await?;
    let key = cache.page_key(
        stamp.page,
        cfg.visible(identity),
        pagination::page_link(parts, params, &[]),
    );
    let origin = pagination::origin(parts);
    let keep = cfg.related.is_none();
    if let Some(page) = cache.page(&key) {
        let head = page.head.render(&origin);
        let versions = match keep && !page.ids.is_empty() {
            true => cache.lists.row_versions(table, &page.ids).await?,
            false => Vec::new(),
        };
        // No row changed since the page was last assembled: its rows' bytes answer as they are.
        if keep
            && let Some((assembled_at, rows)) = &page.rows
            && *assembled_at == versions
        {
            return Ok(assemble(&head, [rows], page.head.tail()));
        }
        let bodies = cached_rows(cfg, cache, &page.ids, &versions).await?;
        let rows = assemble(b"", bodies.iter().flatten(), b"");
        if keep && bodies.iter().all(Option::is_some) {
            let page = CachedPage {
                head: page.head.clone(),
                ids: page.ids.clone(),
                rows: Some((versions, rows.clone())),
            };
            cache.put_page(key, page);
        }
        return Ok(assemble(&head, [&rows], page.head.tail()));
    }
    let page = list_page(cfg, parts, params, identity).await?;
    let ids: Vec<i64> = page
        .rows
        .iter()
        .map(|row| row.get("id").and_then(Value::as_i64).unwrap_or_default())
        .collect();
    let bodies = render_rows(cfg, page.rows).await?;
    let rows = assemble(b"", &bodies, b"");
    let mut assembled = None;
    if keep {
        // Read after the query: a body is kept only if its row was not bumped since the stamp
        // (so the query saw its latest write); the whole page only if none was.
        let versions = match ids.is_empty() {
            true => Vec::new(),
            false => cache.lists.row_versions(table, &ids).await?,
        };
        for ((id, version), row) in ids.iter().zip(&versions).zip(&bodies) {
            if *version <= stamp.clock {
                cache.put_row(*id, *version, row.clone());
            }
        }
        if versions.iter().all(|v| *v <= stamp.clock) {
            assembled = Some((versions, rows.clone()));
        }
    }
    let body = assemble(&page.head.render(&origin), [&rows], page.head.tail());
    let page = CachedPage {
        head: page.head,
        ids,
        rows: assembled,
    };
    cache.put_page(key, page);
    Ok(body)
}

/// The bodies of rows `ids` in order (`None` for a row deleted since the page was cached):
/// from the cache at their `versions` (read before this call), the rest read in one query and
/// kept. Viewsets with a related-objects hook render from other tables too: their bodies are
/// not kept (`versions` is empty).
async fn cached_rows<T: Model>(
    cfg: &Config<T>,
    cache: &ViewsetCache,
    ids: &[i64],
    versions: &[u64],
) -> Result<Vec<Option<Bytes>>, CacheMiss> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let keep = cfg.related.is_none();
    let mut bodies: Vec<Option<Bytes>> = match keep {
        true => ids
            .iter()
            .zip(versions)
            .map(|(id, v)| cache.row(*id, *v))
            .collect(),
        false => vec![None; ids.len()],
    };
    let missing: Vec<i64> = ids
        .iter()
        .zip(&bodies)
        .filter(|(_, b)| b.is_none())
        .map(|(id, _)| *id)
        .collect();
    if missing.is_empty() {
        return Ok(bodies);
    }
    // One statement for a page; an unpaginated list after a touch reads in chunks that stay
    // far below every database's bind limit.
    let mut rows = Vec::with_capacity(missing.len());
    for chunk in missing.chunks(ID_CHUNK) {
        rows.extend(rows::fetch_many(&cfg.db, &cfg.table, chunk).await?);
    }
    let found: Vec<i64> = rows
        .iter()
        .map(|row| row.get("id").and_then(Value::as_i64).unwrap_or_default())
        .collect();
    let rendered = render_rows(cfg, rows).await?;
    let index: std::collections::HashMap<i64, usize> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    for (id, body) in found.into_iter().zip(rendered) {
        if let Some(&i) = index.get(&id) {
            if keep {
                // The versions were read before this query.
                cache.put_row(id, versions[i], body.clone());
            }
            bodies[i] = Some(body);
        }
    }
    Ok(bodies)
}

/// The most ids read by one `WHERE id IN (...)`.
const ID_CHUNK: usize = 500;

/// DRF's `list` before rendering: scope, filters, search, ordering, then the pagination's page.
async fn list_page<T: Model>(
    cfg: &Config<T>,
    parts: &Parts,
    params: &[(String, String)],
    identity: Option<&Identity>,
) -> Result<Page, ApiError> {
    let schema = &cfg.table.schema;
    let d = cfg.table.dialect;
    let Some(mut clause) = cfg.scope_where(identity) else {
        return Ok(Page::empty(&cfg.pagination));
    };
    query::add_filters(schema, d, params, &mut clause)?;
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(search) = param("search") {
        query::add_search(schema, d, search, &mut clause)?;
    }
    let list = ListQuery {
        db: &cfg.db,
        table: &cfg.table,
        clause,
        ordering: query::ordering(schema, param("ordering")),
        params,
        parts,
    };
    cfg.pagination.paginate(&list).await
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
    // A new row (or, for an upserting hook, a changed one).
    cfg.changed(Change {
        membership: true,
        ids: &[id],
        ..cfg.change()
    })
    .await;
    let map = fetch_one(&cfg.db, &cfg.table, id, Where::default())
        .await?
        .ok_or_else(ApiError::not_found)?;
    let object: T = to_model(map)?;
    Ok((
        StatusCode::CREATED,
        json_bytes(render_one(cfg, object).await?),
    )
        .into_response())
}

async fn retrieve<T: Model>(State(cfg): Cfg<T>, Path(id): Path<String>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    answer(
        async {
            let (_, object) = checked_object(&cfg, &parts, Action::Retrieve, &id).await?;
            Ok(json_bytes(render_one(&cfg, object).await?))
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
    // The columns validated (automatic timestamps included) of this one row; a hook that
    // writes more declares it through its context.
    let columns: Vec<&str> = values.values.iter().map(|(name, _)| *name).collect();
    match &cfg.on_update {
        Some(hook) => hook(ctx, object, values).await?,
        None => ctx.update(id, &values).await?,
    }
    cfg.changed(Change {
        columns: &columns,
        ids: &[id],
        ..cfg.change()
    })
    .await;
    let object: T = get_object(&cfg, identity.as_ref(), id).await?;
    Ok(json_bytes(render_one(&cfg, object).await?))
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
            // Gone from every page; its body must not answer for a reused id.
            cfg.changed(Change {
                membership: true,
                ids: &[id],
                ..cfg.change()
            })
            .await;
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
                // An action may change anything of its table.
                cfg.changed(Change::everything(cfg.table.schema.table))
                    .await;
            }
            response
        }
        .await,
    )
}
