//! How a model describes itself once: its table, fields, which fields filter (with which
//! lookups), search and order — DRF's `filterset_fields`, `search_fields` and
//! `ordering_fields`, next to the struct.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use wxrest::viewset::{Field, Lookup, Model, Schema};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Goods { id: i64, name: String, price: i64, on_sale: bool }
//!
//! impl Model for Goods {
//!     fn schema() -> Schema {
//!         Schema::new("goods")
//!             .field(Field::id())
//!             .field(Field::text("name").max_length(100).search().order())
//!             .field(Field::int("price").min(0).filter([Lookup::Gte, Lookup::Lte]).order())
//!             .field(Field::bool("on_sale").default(true).filter([Lookup::Exact]))
//!             .default_ordering(["-id"])
//!     }
//! }
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::db::SqlType;

/// A model served by a [`ModelViewSet`](super::ModelViewSet): a serde struct whose fields match
/// its [`Schema`]'s (rows are read into JSON by the schema, then into the struct).
pub trait Model: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The table and fields. Called once per viewset.
    fn schema() -> Schema;
}

/// The storage and JSON type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A 64-bit integer (ids, quantities, money in fen).
    Int,
    /// Text.
    Text,
    /// A boolean.
    Bool,
    /// A point in time: BIGINT unix seconds in the database, RFC 3339 in JSON.
    Timestamp,
}

impl From<Kind> for SqlType {
    /// The type of a NULL of this kind (timestamps are `BIGINT`).
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Int | Kind::Timestamp => SqlType::Int,
            Kind::Text => SqlType::Text,
            Kind::Bool => SqlType::Bool,
        }
    }
}

/// A filter lookup, django-filter's names: `price__gte=100`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lookup {
    /// `field=value`
    Exact,
    /// `field__gt=value`
    Gt,
    /// `field__gte=value`
    Gte,
    /// `field__lt=value`
    Lt,
    /// `field__lte=value`
    Lte,
    /// `field__in=a,b,c`
    In,
    /// `field__icontains=text` (case-insensitive; `%`, `_` match literally)
    IContains,
    /// `field__isnull=true|false`
    IsNull,
}

impl Lookup {
    /// Every lookup.
    pub const ALL: [Lookup; 8] = [
        Lookup::Exact,
        Lookup::Gt,
        Lookup::Gte,
        Lookup::Lt,
        Lookup::Lte,
        Lookup::In,
        Lookup::IContains,
        Lookup::IsNull,
    ];

    /// The query-parameter suffix (`""` for exact).
    pub fn suffix(self) -> &'static str {
        match self {
            Lookup::Exact => "",
            Lookup::Gt => "gt",
            Lookup::Gte => "gte",
            Lookup::Lt => "lt",
            Lookup::Lte => "lte",
            Lookup::In => "in",
            Lookup::IContains => "icontains",
            Lookup::IsNull => "isnull",
        }
    }

    pub(crate) fn from_suffix(suffix: &str) -> Option<Lookup> {
        Lookup::ALL
            .into_iter()
            .find(|l| l.suffix() == suffix && !suffix.is_empty())
    }
}

/// Values filled in by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auto {
    /// Set to now on create (Django's `auto_now_add`).
    NowOnCreate,
    /// Set to now on create and every update (Django's `auto_now`).
    NowOnSave,
}

/// One field (column) of a model.
#[derive(Debug, Clone)]
pub struct Field {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) read_only: bool,
    pub(crate) nullable: bool,
    pub(crate) allow_blank: bool,
    pub(crate) default: Option<Value>,
    pub(crate) min_length: Option<usize>,
    pub(crate) max_length: Option<usize>,
    pub(crate) min: Option<i64>,
    pub(crate) max: Option<i64>,
    pub(crate) choices: Option<Vec<Value>>,
    pub(crate) lookups: Vec<Lookup>,
    pub(crate) search: bool,
    pub(crate) order: bool,
    pub(crate) references: Option<&'static str>,
    pub(crate) auto: Option<Auto>,
}

impl Field {
    fn new(name: &'static str, kind: Kind) -> Self {
        Self {
            name,
            kind,
            read_only: false,
            nullable: false,
            allow_blank: false,
            default: None,
            min_length: None,
            max_length: None,
            min: None,
            max: None,
            choices: None,
            lookups: Vec::new(),
            search: false,
            order: false,
            references: None,
            auto: None,
        }
    }

    /// The primary key `id`: read-only, filterable by `id` and `id__in`, orderable.
    pub fn id() -> Self {
        Self::int("id")
            .read_only()
            .filter([Lookup::Exact, Lookup::In])
            .order()
    }

    /// An integer field.
    pub fn int(name: &'static str) -> Self {
        Self::new(name, Kind::Int)
    }

    /// A text field.
    pub fn text(name: &'static str) -> Self {
        Self::new(name, Kind::Text)
    }

    /// A boolean field.
    pub fn bool(name: &'static str) -> Self {
        Self::new(name, Kind::Bool)
    }

    /// A timestamp field.
    pub fn timestamp(name: &'static str) -> Self {
        Self::new(name, Kind::Timestamp)
    }

    /// An integer field holding the id of a row of `table` (checked on write:
    /// `Invalid pk "9" - object does not exist.`).
    pub fn foreign_key(name: &'static str, table: &'static str) -> Self {
        let mut f = Self::int(name);
        f.references = Some(table);
        f
    }

    /// Ignored on input, always in output.
    #[must_use]
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Accepts `null`.
    #[must_use]
    pub fn nullable(mut self) -> Self {
        self.nullable = true;
        self
    }

    /// Accepts `""` (text fields refuse blank strings by default, as DRF).
    #[must_use]
    pub fn allow_blank(mut self) -> Self {
        self.allow_blank = true;
        self
    }

    /// Not required on create; this value is used when absent.
    #[must_use]
    pub fn default(mut self, value: impl Into<Value>) -> Self {
        self.default = Some(value.into());
        self
    }

    /// Minimum text length in characters.
    #[must_use]
    pub fn min_length(mut self, n: usize) -> Self {
        self.min_length = Some(n);
        self
    }

    /// Maximum text length in characters.
    #[must_use]
    pub fn max_length(mut self, n: usize) -> Self {
        self.max_length = Some(n);
        self
    }

    /// Minimum integer value.
    #[must_use]
    pub fn min(mut self, n: i64) -> Self {
        self.min = Some(n);
        self
    }

    /// Maximum integer value.
    #[must_use]
    pub fn max(mut self, n: i64) -> Self {
        self.max = Some(n);
        self
    }

    /// The allowed values.
    #[must_use]
    pub fn choices<V: Into<Value>>(mut self, values: impl IntoIterator<Item = V>) -> Self {
        self.choices = Some(values.into_iter().map(Into::into).collect());
        self
    }

    /// Filterable with these lookups (`filterset_fields`).
    #[must_use]
    pub fn filter(mut self, lookups: impl IntoIterator<Item = Lookup>) -> Self {
        self.lookups.extend(lookups);
        self
    }

    /// Part of `?search=` (`search_fields`; text fields).
    #[must_use]
    pub fn search(mut self) -> Self {
        self.search = true;
        self
    }

    /// Allowed in `?ordering=` (`ordering_fields`).
    #[must_use]
    pub fn order(mut self) -> Self {
        self.order = true;
        self
    }

    /// Filled in by the server; implies read-only.
    #[must_use]
    pub fn auto(mut self, auto: Auto) -> Self {
        self.auto = Some(auto);
        self.read_only = true;
        self
    }

    /// The field's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The field's kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }
}

/// A model's table and fields.
#[derive(Debug, Clone)]
pub struct Schema {
    pub(crate) table: &'static str,
    pub(crate) fields: Vec<Field>,
    pub(crate) default_ordering: Vec<String>,
}

impl Schema {
    /// A schema for `table`; add fields with [`field`](Self::field). The primary key is `id`.
    pub fn new(table: &'static str) -> Self {
        Self {
            table,
            fields: Vec::new(),
            default_ordering: Vec::new(),
        }
    }

    /// Adds a field.
    #[must_use]
    pub fn field(mut self, field: Field) -> Self {
        self.fields.push(field);
        self
    }

    /// The ordering when `?ordering=` gives none (e.g. `["-created_at"]`). The primary key is
    /// always appended as a tie-breaker, so pages never overlap.
    #[must_use]
    pub fn default_ordering<S: Into<String>>(
        mut self,
        fields: impl IntoIterator<Item = S>,
    ) -> Self {
        self.default_ordering = fields.into_iter().map(Into::into).collect();
        self
    }

    /// The table name.
    pub fn table(&self) -> &'static str {
        self.table
    }

    /// The fields.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// A field by name.
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}
