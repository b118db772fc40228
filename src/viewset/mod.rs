//! `ModelViewSet`: DRF's `ModelViewSet` + `DjangoFilterBackend` + `SearchFilter` +
//! `OrderingFilter` + pagination, as a typed builder that produces an axum [`Router`].
//! Needs feature `viewset` and a database feature.
//!
//! Describe the model once ([`Model`], [`Schema`]), then:
//!
//! ```
//! # use serde::{Deserialize, Serialize};
//! # use wxrest::viewset::{Field, Lookup, Model, Schema};
//! # #[derive(Serialize, Deserialize)]
//! # struct Goods { id: i64, name: String, price: i64 }
//! # impl Model for Goods {
//! #     fn schema() -> Schema {
//! #         Schema::new("goods").field(Field::id()).field(Field::text("name").search())
//! #             .field(Field::int("price").filter([Lookup::Gte]).order())
//! #     }
//! # }
//! # async fn run(db: wxrest::db::Db) {
//! use axum::Router;
//! use wxrest::auth::{IsAdminUser, IsAuthenticated};
//! use wxrest::viewset::{Action, ModelViewSet, PageNumber};
//!
//! let goods = ModelViewSet::<Goods>::new(db)
//!     .permission(IsAuthenticated)
//!     .permission_for([Action::Create, Action::Update, Action::PartialUpdate, Action::Destroy], IsAdminUser)
//!     .pagination(PageNumber::size(10).max(100))
//!     .routes_at("/mall/goods");
//! let app: Router = Router::new().merge(goods);
//! # }
//! ```
//!
//! Routes (each with and without the trailing slash): `GET /` list, `POST /` create,
//! `GET /{id}` retrieve, `PUT /{id}` update, `PATCH /{id}` partial update, `DELETE /{id}`
//! destroy, plus extra actions (`/{id}/name` or `/name`). Permissions read the [`Identity`] put
//! in the request by an auth layer (see [`crate::auth`]); put one around the app or pass it to
//! [`ModelViewSet::authentication`].

mod cache;
mod handlers;
#[cfg(feature = "openapi")]
mod openapi;
mod pagination;
mod query;
mod rows;
mod schema;
mod validation;

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use axum::Router;
use axum::response::Response;
use http::Method;
use serde_json::{Map, Value};

pub use cache::{
    DEFAULT_MAX_BYTES, ENTRY_TTL, ListCache, ListCacheStats, MAX_ROW_VERSIONS, VERSION_TTL,
};
pub use pagination::{CursorPagination, LimitOffset, PageNumber, Pagination};
pub use query::{MAX_SEARCH_TERM_CHARS, MAX_SEARCH_TERMS};
pub use rows::write_error;
pub use schema::{Auto, Field, Kind, Lookup, Model, Schema};
pub use validation::{Mode, Validated};

use self::cache::{Change, ViewsetCache};
use self::query::Where;
use self::rows::Table;
use crate::auth::BoxFuture;
use crate::auth::{AllowAny, AuthLayer, Identity, Permission};
use crate::db::{Db, SqlValue};
use crate::error::ApiError;

/// A viewset action (DRF's `self.action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `GET /`
    List,
    /// `POST /`
    Create,
    /// `GET /{id}`
    Retrieve,
    /// `PUT /{id}`
    Update,
    /// `PATCH /{id}`
    PartialUpdate,
    /// `DELETE /{id}`
    Destroy,
    /// An extra action by name.
    Custom(&'static str),
}

impl Action {
    /// DRF's action name (`list`, `partial_update`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Action::List => "list",
            Action::Create => "create",
            Action::Retrieve => "retrieve",
            Action::Update => "update",
            Action::PartialUpdate => "partial_update",
            Action::Destroy => "destroy",
            Action::Custom(name) => name,
        }
    }

    /// The six standard actions.
    pub const STANDARD: [Action; 6] = [
        Action::List,
        Action::Create,
        Action::Retrieve,
        Action::Update,
        Action::PartialUpdate,
        Action::Destroy,
    ];

    /// The four write actions of a model (create, update, partial update, destroy).
    pub const WRITES: [Action; 4] = [
        Action::Create,
        Action::Update,
        Action::PartialUpdate,
        Action::Destroy,
    ];
}

/// What hooks and extra actions get: the database, who asks, and the model's schema.
#[derive(Clone)]
pub struct WriteContext {
    /// The database.
    pub db: Db,
    /// The authenticated user, if any.
    pub identity: Option<Identity>,
    /// The model's schema.
    pub schema: Arc<Schema>,
    /// The raw request body (`{}` when empty), for hooks that take more than the model's
    /// fields (e.g. an order's item list).
    pub data: Map<String, Value>,
    cache: Option<ListCache>,
}

impl WriteContext {
    /// The default create: one INSERT, returning the new id.
    pub async fn insert(&self, values: &Validated) -> Result<i64, ApiError> {
        rows::insert(&self.db, &self.schema, values).await
    }

    /// The default update.
    pub async fn update(&self, id: i64, values: &Validated) -> Result<(), ApiError> {
        rows::update(&self.db, &self.schema, id, values).await
    }

    /// Marks `table` changed in any way for cached lists (a hook that added, removed or
    /// changed its rows with raw SQL): see [`ListCache::touch`]. What the viewset's own write
    /// changed in its table is declared without asking.
    pub async fn touch(&self, table: &str) {
        if let Some(cache) = &self.cache {
            bump(cache, Change::everything(table)).await;
        }
    }

    /// Marks `columns` of the rows `ids` of `table` changed for cached lists (a hook's raw
    /// `UPDATE`): see [`ListCache::changed`]. Pages that neither filter, search nor order by
    /// these columns stay cached.
    ///
    /// ```
    /// # async fn hook(ctx: wxrest::viewset::WriteContext) {
    /// // After `UPDATE goods SET stock = stock - 2 WHERE id = 7`:
    /// ctx.changed("goods", &["stock"], &[7]).await;
    /// # }
    /// ```
    pub async fn changed(&self, table: &str, columns: &[&str], ids: &[i64]) {
        if let Some(cache) = &self.cache {
            bump(cache, Change::rows(table, columns, ids)).await;
        }
    }

    /// The default destroy.
    pub async fn delete(&self, id: i64) -> Result<(), ApiError> {
        rows::delete(&self.db, &self.schema, id).await
    }
}

/// Bumps the versions of `change`; a failure is logged (lists may then serve the old page until
/// [`ENTRY_TTL`] ends).
async fn bump(cache: &ListCache, change: Change<'_>) {
    if let Err(e) = cache.bump(change).await {
        tracing::error!(error = %e, table = change.table, "could not invalidate cached lists");
    }
}

/// What an extra action gets: the write context, the object (detail actions), the body.
pub struct ActionContext<T> {
    /// Database, identity, schema.
    pub ctx: WriteContext,
    /// The object, for detail actions (already scoped and permission-checked).
    pub object: Option<T>,
    /// The request body (`{}` when empty).
    pub data: Map<String, Value>,
}

type CreateHook =
    Arc<dyn Fn(WriteContext, Validated) -> BoxFuture<'static, Result<i64, ApiError>> + Send + Sync>;
type UpdateHook<T> = Arc<
    dyn Fn(WriteContext, T, Validated) -> BoxFuture<'static, Result<(), ApiError>> + Send + Sync,
>;
type DestroyHook<T> =
    Arc<dyn Fn(WriteContext, T) -> BoxFuture<'static, Result<(), ApiError>> + Send + Sync>;
type ActionHandler<T> =
    Arc<dyn Fn(ActionContext<T>) -> BoxFuture<'static, Result<Response, ApiError>> + Send + Sync>;
type RelatedHook<T> =
    Arc<dyn Fn(Db, Vec<T>) -> BoxFuture<'static, Result<Vec<T>, ApiError>> + Send + Sync>;
type ScopeFn = Arc<dyn Fn(&Identity) -> Option<i64> + Send + Sync>;

pub(crate) struct Extra<T> {
    name: &'static str,
    detail: bool,
    method: Method,
    handler: ActionHandler<T>,
}

/// Owner scoping: rows whose `field` is the caller's id (DRF's `get_queryset` filtering by
/// `request.user`). Rows outside the scope answer 404, as if missing.
#[derive(Clone)]
pub(crate) struct Scope {
    field: &'static str,
    owner: ScopeFn,
}

/// Which rows of a viewset a caller sees. Three states, because "no one's" and "everyone's"
/// must never share a cached page: a scoped viewset shows an anonymous caller nothing, and an
/// unscoped caller (no scope, staff under `owner_field_staff_sees_all`, a `scope_by` closure
/// answering `None`) everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Visible {
    /// An anonymous caller of a scoped viewset.
    Nothing,
    /// Every row.
    All,
    /// The rows whose scope field is this id.
    Owner(i64),
}

pub(crate) struct Config<T> {
    db: Db,
    table: Table,
    shared_schema: Arc<Schema>,
    permission: Arc<dyn Permission>,
    per_action: HashMap<Action, Arc<dyn Permission>>,
    pagination: Pagination,
    scope: Option<Scope>,
    actions: Vec<Action>,
    extras: Vec<Extra<T>>,
    on_create: Option<CreateHook>,
    on_update: Option<UpdateHook<T>>,
    on_destroy: Option<DestroyHook<T>>,
    related: Option<RelatedHook<T>>,
    cache: Option<ViewsetCache>,
    auth: Option<AuthLayer>,
    _model: PhantomData<fn() -> T>,
}

/// The builder. See the [module docs](self).
pub struct ModelViewSet<T: Model> {
    config: Config<T>,
}

impl<T: Model> ModelViewSet<T> {
    /// A viewset over `T`'s table in `db`: all six actions, [`AllowAny`], page-number
    /// pagination of 10 (DRF's usual settings).
    pub fn new(db: Db) -> Self {
        let schema = T::schema();
        let dialect = db.dialect();
        Self {
            config: Config {
                shared_schema: Arc::new(schema.clone()),
                table: Table::new(schema, dialect),
                db,
                permission: Arc::new(AllowAny),
                per_action: HashMap::new(),
                pagination: PageNumber::size(10).into(),
                scope: None,
                actions: Action::STANDARD.to_vec(),
                extras: Vec::new(),
                on_create: None,
                on_update: None,
                on_destroy: None,
                related: None,
                cache: None,
                auth: None,
                _model: PhantomData,
            },
        }
    }

    /// The permission of every action (DRF's `permission_classes`).
    #[must_use]
    pub fn permission(mut self, permission: impl Permission) -> Self {
        self.config.permission = Arc::new(permission);
        self
    }

    /// The permission of these actions, replacing the default for them (DRF's
    /// `get_permissions` by `self.action`).
    #[must_use]
    pub fn permission_for(
        mut self,
        actions: impl IntoIterator<Item = Action>,
        permission: impl Permission,
    ) -> Self {
        let permission: Arc<dyn Permission> = Arc::new(permission);
        for action in actions {
            self.config.per_action.insert(action, permission.clone());
        }
        self
    }

    /// How lists are paginated.
    #[must_use]
    pub fn pagination(mut self, pagination: impl Into<Pagination>) -> Self {
        self.config.pagination = pagination.into();
        self
    }

    /// Only these standard actions are routed (e.g. a read-only viewset:
    /// `[Action::List, Action::Retrieve]`).
    #[must_use]
    pub fn actions(mut self, actions: impl IntoIterator<Item = Action>) -> Self {
        self.config.actions = actions.into_iter().collect();
        self
    }

    /// Scopes every action to rows whose `field` is the caller's user id; creates set it.
    /// Anonymous callers see nothing.
    #[must_use]
    pub fn owner_field(self, field: &'static str) -> Self {
        self.scope_by(field, |identity| Some(identity.user_id))
    }

    /// Like [`owner_field`](Self::owner_field), but staff see (and act on) every row.
    #[must_use]
    pub fn owner_field_staff_sees_all(self, field: &'static str) -> Self {
        self.scope_by(field, |identity| {
            (!identity.is_staff).then_some(identity.user_id)
        })
    }

    /// Scopes rows by `field` = `owner(identity)`; `None` means no restriction for this caller.
    #[must_use]
    pub fn scope_by(
        mut self,
        field: &'static str,
        owner: impl Fn(&Identity) -> Option<i64> + Send + Sync + 'static,
    ) -> Self {
        self.config.scope = Some(Scope {
            field,
            owner: Arc::new(owner),
        });
        self
    }

    /// Authenticates requests with this layer's authenticators before the viewset's own
    /// permission checks (DRF's `authentication_classes`). Its permission should be
    /// [`AllowAny`]: the viewset decides per action.
    #[must_use]
    pub fn authentication(mut self, layer: AuthLayer) -> Self {
        self.config.auth = Some(layer);
        self
    }

    /// Replaces the default INSERT (DRF's `perform_create`); returns the new id.
    #[must_use]
    pub fn on_create<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(WriteContext, Validated) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<i64, ApiError>> + Send + 'static,
    {
        self.config.on_create = Some(Arc::new(move |ctx, values| Box::pin(hook(ctx, values))));
        self
    }

    /// Replaces the default UPDATE (DRF's `perform_update`).
    #[must_use]
    pub fn on_update<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(WriteContext, T, Validated) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ApiError>> + Send + 'static,
    {
        self.config.on_update = Some(Arc::new(move |ctx, obj, values| {
            Box::pin(hook(ctx, obj, values))
        }));
        self
    }

    /// Replaces the default DELETE (DRF's `perform_destroy`).
    #[must_use]
    pub fn on_destroy<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(WriteContext, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ApiError>> + Send + 'static,
    {
        self.config.on_destroy = Some(Arc::new(move |ctx, obj| Box::pin(hook(ctx, obj))));
        self
    }

    /// Caches list pages and row bodies in `cache`, invalidated by what writes change (see
    /// [`ListCache`]). Viewsets may share one cache: each keeps its own pages and row bodies
    /// (another model over the same table never serves them), and all share the versions.
    #[must_use]
    pub fn cache(mut self, cache: ListCache) -> Self {
        self.config.cache = Some(cache.for_viewset());
        self
    }

    /// Completes objects before they are rendered (DRF's `prefetch_related` + nested
    /// serializers): called once per response with every object of the page, so related rows
    /// load in one query, not one per object.
    #[must_use]
    pub fn with_related<F, Fut>(mut self, load: F) -> Self
    where
        F: Fn(Db, Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<T>, ApiError>> + Send + 'static,
    {
        self.config.related = Some(Arc::new(move |db, objects| Box::pin(load(db, objects))));
        self
    }

    /// An extra action (DRF's `@action`): `detail` ones live at `/{id}/name/` and get the
    /// object (scoped, object-permission checked); others at `/name/`. Its permission is
    /// [`Action::Custom`]`(name)`'s, else the default.
    #[must_use]
    pub fn action<F, Fut>(
        mut self,
        name: &'static str,
        detail: bool,
        method: Method,
        handler: F,
    ) -> Self
    where
        F: Fn(ActionContext<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
    {
        self.config.extras.push(Extra {
            name,
            detail,
            method,
            handler: Arc::new(move |ctx| Box::pin(handler(ctx))),
        });
        self
    }

    /// The routes under `prefix` (e.g. `/mall/goods`), each with and without the trailing
    /// slash; merge them into the app. (axum 0.8 cannot route a trailing slash on a nested
    /// router's root, so prefer this to nesting [`router`](Self::router).)
    pub fn routes_at(self, prefix: &str) -> Router {
        handlers::router(self.config, prefix)
    }

    /// The OpenAPI 3.1 fragment of the routes [`routes_at`](Self::routes_at)`(prefix)` serves:
    /// each routed action at `{prefix}/` or `{prefix}/{id}/` (the trailing-slash form; both
    /// answer), extra actions, the `<Table>` and `<Table>Input` schemas, the list's filter,
    /// `search`, `ordering` and pagination parameters and page envelope, the error answers and
    /// the `jwtAuth` scheme. Merge it into a document with [`ApiDoc`](crate::openapi::ApiDoc).
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use wxrest::viewset::{Field, Lookup, Model, Schema};
    /// # #[derive(Serialize, Deserialize)]
    /// # struct Goods { id: i64, name: String, price: i64 }
    /// # impl Model for Goods {
    /// #     fn schema() -> Schema {
    /// #         Schema::new("goods").field(Field::id()).field(Field::text("name").search())
    /// #             .field(Field::int("price").filter([Lookup::Gte]).order())
    /// #     }
    /// # }
    /// # async fn run(db: wxrest::db::Db) {
    /// use wxrest::openapi::ApiDoc;
    /// use wxrest::viewset::{Action, ModelViewSet};
    ///
    /// let goods = ModelViewSet::<Goods>::new(db).actions([Action::List, Action::Retrieve]);
    /// let doc = ApiDoc::new("Mall API", "1.0.0").merge(goods.openapi("/mall/goods")).build();
    /// assert!(doc.paths.paths.contains_key("/mall/goods/{id}/"));
    /// let app = goods.routes_at("/mall/goods");
    /// # let _ = app;
    /// # }
    /// ```
    ///
    /// Needs feature `openapi`.
    #[cfg(feature = "openapi")]
    #[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
    pub fn openapi(&self, prefix: &str) -> utoipa::openapi::OpenApi {
        openapi::document(&self.config, prefix, self.config.table.schema.table)
    }

    /// Like [`openapi`](Self::openapi), with operationIds `{name}_list`, `{name}_create`, ...
    /// instead of the table's name: for a second viewset over the same model (operationIds
    /// must be unique in a document). Its component schemas keep the table's names, so the
    /// first fragment merged defines them.
    ///
    /// Needs feature `openapi`.
    #[cfg(feature = "openapi")]
    #[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
    pub fn openapi_as(&self, prefix: &str, name: &str) -> utoipa::openapi::OpenApi {
        openapi::document(&self.config, prefix, name)
    }

    /// The routes relative to where you nest them: `/` (answering at the nest point without a
    /// trailing slash), `/{id}`, `/{id}/`, extra actions.
    pub fn router(self) -> Router {
        handlers::router(self.config, "")
    }
}

impl<T: Model> Config<T> {
    fn permission_of(&self, action: Action) -> &Arc<dyn Permission> {
        self.per_action.get(&action).unwrap_or(&self.permission)
    }

    /// Which rows this caller sees: the one answer both a list's query and its cache key are
    /// made from.
    fn visible(&self, identity: Option<&Identity>) -> Visible {
        let Some(scope) = &self.scope else {
            return Visible::All;
        };
        match identity {
            None => Visible::Nothing,
            Some(identity) => (scope.owner)(identity).map_or(Visible::All, Visible::Owner),
        }
    }

    /// A change of this viewset's table that changes nothing yet: fill in what did.
    fn change(&self) -> Change<'static> {
        Change::rows(self.table.schema.table, &[], &[])
    }

    /// Tells the list cache what a write changed, before the write's response leaves.
    async fn changed(&self, change: Change<'_>) {
        if let Some(cache) = &self.cache {
            bump(&cache.lists, change).await;
        }
    }

    /// The scope condition for this caller; `None` when a scoped viewset meets an anonymous
    /// caller (nothing is visible).
    fn scope_where(&self, identity: Option<&Identity>) -> Option<Where> {
        let mut clause = Where::default();
        match self.visible(identity) {
            Visible::Nothing => return None,
            Visible::All => {}
            Visible::Owner(owner) => {
                // `Owner` comes only from a scope.
                if let Some(scope) = &self.scope {
                    let d = self.table.dialect;
                    let p = clause.param(d, SqlValue::Int(owner));
                    clause.push(format!("{} = {p}", d.quote_ident(scope.field)));
                }
            }
        }
        Some(clause)
    }

    fn write_context(&self, identity: Option<Identity>, data: Map<String, Value>) -> WriteContext {
        WriteContext {
            db: self.db.clone(),
            identity,
            schema: self.shared_schema.clone(),
            data,
            cache: self.cache.as_ref().map(|c| c.lists.clone()),
        }
    }
}
