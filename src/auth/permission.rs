//! Permissions and their combinators (documented on [`Permission`]).

use std::any::Any;
use std::borrow::Cow;
use std::sync::Arc;

use http::request::Parts;
use http::{Extensions, HeaderMap, Method, Uri};

use super::identity::Identity;

/// What a permission sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI.
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The extensions (application data put there by other layers).
    pub extensions: &'a Extensions,
    /// The authenticated user, if any.
    pub identity: Option<&'a Identity>,
    /// The viewset action (`list`, `create`, ...), when a viewset asks.
    pub action: Option<&'a str>,
}

impl<'a> RequestContext<'a> {
    /// The context of a request's head.
    pub fn new(parts: &'a Parts, identity: Option<&'a Identity>) -> Self {
        Self {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
            extensions: &parts.extensions,
            identity,
            action: None,
        }
    }

    /// Sets the viewset action.
    #[must_use]
    pub fn with_action(mut self, action: &'a str) -> Self {
        self.action = Some(action);
        self
    }

    /// GET, HEAD or OPTIONS (DRF's `SAFE_METHODS`).
    pub fn is_safe_method(&self) -> bool {
        matches!(*self.method, Method::GET | Method::HEAD | Method::OPTIONS)
    }

    /// An active user is authenticated.
    pub fn is_authenticated(&self) -> bool {
        self.identity.is_some_and(|i| i.is_active)
    }

    /// The authenticated user's id.
    pub fn user_id(&self) -> Option<i64> {
        self.identity.map(|i| i.user_id)
    }
}

/// Why a permission said no. `message: None` is DRF's default message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Denied {
    /// The message for the 403 body.
    pub message: Option<Cow<'static, str>>,
}

/// A permission: DRF's `BasePermission`.
///
/// As DRF's `permission_classes`: view-level [`Permission::has_permission`] and
/// object-level [`Permission::has_object_permission`], composable with
/// [`and`](PermissionExt::and), [`or`](PermissionExt::or) and [`not`](PermissionExt::not).
///
/// Implement the trait, or pass a closure over the [`RequestContext`]:
///
/// ```
/// use wxrest::auth::{IsAdminUser, IsAuthenticated, Permission, PermissionExt, RequestContext};
///
/// struct WeekdaysOnly;
/// impl Permission for WeekdaysOnly {
///     fn has_permission(&self, _req: &RequestContext<'_>) -> bool {
///         true // look at a clock here
///     }
/// }
///
/// let staff_or_reading = IsAdminUser.or(|req: &RequestContext<'_>| req.is_safe_method());
/// let policy = IsAuthenticated.and(WeekdaysOnly).and(staff_or_reading);
/// # let _ = policy;
/// ```
pub trait Permission: Send + Sync + 'static {
    /// May this request proceed at all? (default: yes)
    fn has_permission(&self, req: &RequestContext<'_>) -> bool {
        let _ = req;
        true
    }

    /// May this request act on `obj`? (default: yes). Downcast `obj` to your model.
    fn has_object_permission(&self, req: &RequestContext<'_>, obj: &dyn Any) -> bool {
        let _ = (req, obj);
        true
    }

    /// The 403 message when this permission denies (default: DRF's).
    fn message(&self) -> Option<Cow<'static, str>> {
        None
    }

    /// [`has_permission`](Self::has_permission) with the denial reason.
    fn check(&self, req: &RequestContext<'_>) -> Result<(), Denied> {
        if self.has_permission(req) {
            Ok(())
        } else {
            Err(Denied {
                message: self.message(),
            })
        }
    }

    /// [`has_object_permission`](Self::has_object_permission) with the denial reason.
    fn check_object(&self, req: &RequestContext<'_>, obj: &dyn Any) -> Result<(), Denied> {
        if self.has_object_permission(req, obj) {
            Ok(())
        } else {
            Err(Denied {
                message: self.message(),
            })
        }
    }
}

impl<F> Permission for F
where
    F: Fn(&RequestContext<'_>) -> bool + Send + Sync + 'static,
{
    fn has_permission(&self, req: &RequestContext<'_>) -> bool {
        self(req)
    }
}

impl<P: Permission + ?Sized> Permission for Arc<P> {
    fn has_permission(&self, req: &RequestContext<'_>) -> bool {
        (**self).has_permission(req)
    }
    fn has_object_permission(&self, req: &RequestContext<'_>, obj: &dyn Any) -> bool {
        (**self).has_object_permission(req, obj)
    }
    fn message(&self) -> Option<Cow<'static, str>> {
        (**self).message()
    }
    fn check(&self, req: &RequestContext<'_>) -> Result<(), Denied> {
        (**self).check(req)
    }
    fn check_object(&self, req: &RequestContext<'_>, obj: &dyn Any) -> Result<(), Denied> {
        (**self).check_object(req, obj)
    }
}

/// Everyone, authenticated or not.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAny;
impl Permission for AllowAny {}

/// Authenticated, active users.
#[derive(Debug, Clone, Copy, Default)]
pub struct IsAuthenticated;
impl Permission for IsAuthenticated {
    fn has_permission(&self, req: &RequestContext<'_>) -> bool {
        req.is_authenticated()
    }
}

/// Staff users (`is_staff`).
#[derive(Debug, Clone, Copy, Default)]
pub struct IsAdminUser;
impl Permission for IsAdminUser {
    fn has_permission(&self, req: &RequestContext<'_>) -> bool {
        req.identity.is_some_and(|i| i.is_active && i.is_staff)
    }
}

/// Anyone may read (GET, HEAD, OPTIONS); writing needs authentication.
#[derive(Debug, Clone, Copy, Default)]
pub struct IsAuthenticatedOrReadOnly;
impl Permission for IsAuthenticatedOrReadOnly {
    fn has_permission(&self, req: &RequestContext<'_>) -> bool {
        req.is_safe_method() || req.is_authenticated()
    }
}

/// Both must allow; the first that denies gives the message.
#[derive(Debug, Clone, Copy)]
pub struct And<A, B>(pub A, pub B);

/// Either may allow (for objects, DRF 3.14's rule: one side allowing both the view and the
/// object).
#[derive(Debug, Clone, Copy)]
pub struct Or<A, B>(pub A, pub B);

/// Allows what the inner permission denies.
#[derive(Debug, Clone, Copy)]
pub struct Not<A>(pub A);

impl<A: Permission, B: Permission> Permission for And<A, B> {
    fn has_permission(&self, req: &RequestContext<'_>) -> bool {
        self.0.has_permission(req) && self.1.has_permission(req)
    }
    fn has_object_permission(&self, req: &RequestContext<'_>, obj: &dyn Any) -> bool {
        self.0.has_object_permission(req, obj) && self.1.has_object_permission(req, obj)
    }
    fn check(&self, req: &RequestContext<'_>) -> Result<(), Denied> {
        self.0.check(req)?;
        self.1.check(req)
    }
    fn check_object(&self, req: &RequestContext<'_>, obj: &dyn Any) -> Result<(), Denied> {
        self.0.check_object(req, obj)?;
        self.1.check_object(req, obj)
    }
}

impl<A: Permission, B: Permission> Permission for Or<A, B> {
    fn has_permission(&self, req: &RequestContext<'_>) -> bool {
        self.0.has_permission(req) || self.1.has_permission(req)
    }
    fn has_object_permission(&self, req: &RequestContext<'_>, obj: &dyn Any) -> bool {
        (self.0.has_permission(req) && self.0.has_object_permission(req, obj))
            || (self.1.has_permission(req) && self.1.has_object_permission(req, obj))
    }
    fn check(&self, req: &RequestContext<'_>) -> Result<(), Denied> {
        match self.0.check(req) {
            Ok(()) => Ok(()),
            Err(first) => self.1.check(req).map_err(|second| Denied {
                message: second.message.or(first.message),
            }),
        }
    }
    fn check_object(&self, req: &RequestContext<'_>, obj: &dyn Any) -> Result<(), Denied> {
        if self.has_object_permission(req, obj) {
            Ok(())
        } else {
            Err(Denied {
                message: self.1.message().or_else(|| self.0.message()),
            })
        }
    }
}

impl<A: Permission> Permission for Not<A> {
    fn has_permission(&self, req: &RequestContext<'_>) -> bool {
        !self.0.has_permission(req)
    }
    fn has_object_permission(&self, req: &RequestContext<'_>, obj: &dyn Any) -> bool {
        !self.0.has_object_permission(req, obj)
    }
}

/// A permission with its own 403 message.
#[derive(Debug, Clone)]
pub struct WithMessage<P>(pub P, pub Cow<'static, str>);

impl<P: Permission> Permission for WithMessage<P> {
    fn has_permission(&self, req: &RequestContext<'_>) -> bool {
        self.0.has_permission(req)
    }
    fn has_object_permission(&self, req: &RequestContext<'_>, obj: &dyn Any) -> bool {
        self.0.has_object_permission(req, obj)
    }
    fn message(&self) -> Option<Cow<'static, str>> {
        Some(self.1.clone())
    }
}

/// An object-level permission from a closure over the object's type: view level allows, the
/// object check downcasts to `T` (objects of another type are denied).
///
/// ```
/// use wxrest::auth::{IsAuthenticated, ObjectPermission, PermissionExt};
///
/// struct CartItem { owner: i64 }
/// let owner_only = IsAuthenticated.and(ObjectPermission::new(|req, item: &CartItem| {
///     req.user_id() == Some(item.owner)
/// }));
/// # let _ = owner_only;
/// ```
pub struct ObjectPermission<T, F> {
    check: F,
    _object: std::marker::PhantomData<fn(&T)>,
}

impl<T, F: Clone> Clone for ObjectPermission<T, F> {
    fn clone(&self) -> Self {
        Self {
            check: self.check.clone(),
            _object: std::marker::PhantomData,
        }
    }
}

impl<T, F> ObjectPermission<T, F>
where
    T: 'static,
    F: Fn(&RequestContext<'_>, &T) -> bool + Send + Sync + 'static,
{
    /// Wraps `check`.
    pub fn new(check: F) -> Self {
        Self {
            check,
            _object: std::marker::PhantomData,
        }
    }
}

impl<T, F> Permission for ObjectPermission<T, F>
where
    T: 'static,
    F: Fn(&RequestContext<'_>, &T) -> bool + Send + Sync + 'static,
{
    fn has_object_permission(&self, req: &RequestContext<'_>, obj: &dyn Any) -> bool {
        obj.downcast_ref::<T>()
            .is_some_and(|o| (self.check)(req, o))
    }
}

/// Combinators for every permission.
pub trait PermissionExt: Permission + Sized {
    /// Both must allow (DRF's `&`).
    fn and<B: Permission>(self, other: B) -> And<Self, B> {
        And(self, other)
    }
    /// Either may allow (DRF's `|`).
    fn or<B: Permission>(self, other: B) -> Or<Self, B> {
        Or(self, other)
    }
    /// Allows what this denies (DRF's `~`).
    fn not(self) -> Not<Self> {
        Not(self)
    }
    /// Replaces the 403 message.
    fn with_message(self, message: impl Into<Cow<'static, str>>) -> WithMessage<Self> {
        WithMessage(self, message.into())
    }
}

impl<P: Permission> PermissionExt for P {}
