//! A viewset's OpenAPI fragment: the routed actions, the model's schemas, the list's query
//! parameters and page envelope, as [`ModelViewSet::openapi`](super::ModelViewSet::openapi)
//! returns them.

use serde_json::Value;
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::schema::{
    KnownFormat, ObjectBuilder, Schema as JsonSchema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{OpenApi, OpenApiBuilder, PathItem, Paths, RefOr, Required, Tag};

use super::pagination::Pagination;
use super::schema::{Auto, Field, Kind, Lookup, Model, Schema};
use super::{Action, Config};
use crate::openapi::{
    any_value, components, error_response, integer, json_body, json_response, jwt_requirement,
    query_param, schema_ref, string,
};

const BOTH_FORMS: &str = "Answers with and without the trailing slash.";

/// The fragment of a viewset routed at `prefix`, its operationIds `{name}_{action}`.
pub(super) fn document<T: Model>(config: &Config<T>, prefix: &str, name: &str) -> OpenApi {
    let prefix = prefix.trim_end_matches('/');
    let schema = &config.table.schema;
    let table = schema.table;
    let model = pascal_case(table);
    let input = format!("{model}Input");
    let patched = format!("Patched{model}Input");
    let has = |a: Action| config.actions.contains(&a);
    let op = |action: &str, summary: String| {
        OperationBuilder::new()
            .operation_id(Some(format!("{name}_{action}")))
            .tag(table)
            .summary(Some(summary))
            .description(Some(BOTH_FORMS))
            .security(jwt_requirement())
            .response("401", error_response(401).1)
            .response("403", error_response(403).1)
    };
    let detail = |builder: OperationBuilder| {
        builder
            .parameter(id_param())
            .response("404", error_response(404).1)
    };

    let mut paths = Paths::new();
    let mut schemas: Vec<(String, RefOr<JsonSchema>)> =
        vec![(model.clone(), output_schema(schema).into())];
    let collection = format!("{prefix}/");
    let item = format!("{prefix}/{{id}}/");

    if has(Action::List) {
        let (response, envelope) = config.pagination.openapi_response(&model);
        if let Some((name, envelope)) = envelope {
            schemas.push((name, envelope));
        }
        let mut list = op("list", format!("List {table}"))
            .parameters(Some(list_params(schema, &config.pagination)))
            .response("200", response)
            .response("400", error_response(400).1);
        if !matches!(config.pagination, Pagination::None) {
            list = list.response("404", json_response("Invalid page.", schema_ref("Error")));
        }
        add(&mut paths, &collection, HttpMethod::Get, list.build());
    }
    if has(Action::Create) {
        let create = op("create", format!("Create one of {table}"))
            .request_body(Some(json_body(schema_ref(&input), true)))
            .response("201", json_response("Created.", schema_ref(&model)))
            .response("400", error_response(400).1);
        add(&mut paths, &collection, HttpMethod::Post, create.build());
    }
    if has(Action::Retrieve) {
        let retrieve = detail(op("retrieve", format!("One of {table}")))
            .response("200", json_response("The object.", schema_ref(&model)));
        add(&mut paths, &item, HttpMethod::Get, retrieve.build());
    }
    if has(Action::Update) {
        let update = detail(op("update", format!("Replace one of {table}")))
            .request_body(Some(json_body(schema_ref(&input), true)))
            .response("200", json_response("Updated.", schema_ref(&model)))
            .response("400", error_response(400).1);
        add(&mut paths, &item, HttpMethod::Put, update.build());
    }
    if has(Action::PartialUpdate) {
        let partial = detail(op(
            "partial_update",
            format!("Change fields of one of {table}"),
        ))
        .request_body(Some(json_body(schema_ref(&patched), true)))
        .response("200", json_response("Updated.", schema_ref(&model)))
        .response("400", error_response(400).1);
        add(&mut paths, &item, HttpMethod::Patch, partial.build());
    }
    if has(Action::Destroy) {
        let destroy = detail(op("destroy", format!("Delete one of {table}"))).response(
            "204",
            utoipa::openapi::ResponseBuilder::new()
                .description("Deleted.")
                .build(),
        );
        add(&mut paths, &item, HttpMethod::Delete, destroy.build());
    }
    if has(Action::Create) || has(Action::Update) {
        schemas.push((input, input_schema(config, true).into()));
    }
    if has(Action::PartialUpdate) {
        schemas.push((patched, input_schema(config, false).into()));
    }
    for extra in &config.extras {
        let method = http_method(&extra.method);
        let mut action = op(extra.name, format!("{} ({table})", extra.name))
            .response("200", json_response("The action's answer.", any_value()));
        if method != HttpMethod::Get && method != HttpMethod::Delete {
            action = action
                .request_body(Some(json_body(ObjectBuilder::new(), false)))
                .response("400", error_response(400).1);
        }
        let path = if extra.detail {
            action = detail(action);
            format!("{prefix}/{{id}}/{}/", extra.name)
        } else {
            format!("{prefix}/{}/", extra.name)
        };
        add(&mut paths, &path, method, action.build());
    }

    OpenApiBuilder::new()
        .paths(paths)
        .components(Some(components(schemas)))
        .tags(Some([Tag::new(table)]))
        .build()
}

fn add(paths: &mut Paths, path: &str, method: HttpMethod, operation: Operation) {
    paths.merge(
        utoipa::openapi::PathsBuilder::new()
            .path(path, PathItem::new(method, operation))
            .build(),
    );
}

/// `goods` -> `Goods`, `order_items` -> `OrderItems`.
fn pascal_case(table: &str) -> String {
    table
        .split(['_', '-', ' ', '.'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// The router's method for an extra action (it falls back to POST for methods axum cannot
/// route).
fn http_method(method: &http::Method) -> HttpMethod {
    match method.as_str() {
        "GET" => HttpMethod::Get,
        "PUT" => HttpMethod::Put,
        "DELETE" => HttpMethod::Delete,
        "PATCH" => HttpMethod::Patch,
        "HEAD" => HttpMethod::Head,
        "OPTIONS" => HttpMethod::Options,
        "TRACE" => HttpMethod::Trace,
        _ => HttpMethod::Post,
    }
}

fn id_param() -> Parameter {
    ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some("The object's id."))
        .schema(Some(integer()))
        .build()
}

fn json_type(kind: Kind) -> (Type, Option<KnownFormat>) {
    match kind {
        Kind::Int => (Type::Integer, Some(KnownFormat::Int64)),
        Kind::Text => (Type::String, None),
        Kind::Bool => (Type::Boolean, None),
        Kind::Timestamp => (Type::String, Some(KnownFormat::DateTime)),
    }
}

/// A field's value schema: its type (`["x", "null"]` when nullable), format and constraints.
fn field_schema(field: &Field) -> ObjectBuilder {
    let (ty, format) = json_type(field.kind);
    let schema_type: SchemaType = if field.nullable {
        [ty, Type::Null].into_iter().collect()
    } else {
        ty.into()
    };
    let mut notes = Vec::new();
    if let Some(table) = field.references {
        notes.push(format!("The id of a row of `{table}`."));
    }
    match field.auto {
        Some(Auto::NowOnCreate) => notes.push("Set by the server on create.".into()),
        Some(Auto::NowOnSave) => notes.push("Set by the server on every save.".into()),
        None => {}
    }
    let mut builder = ObjectBuilder::new()
        .schema_type(schema_type)
        .format(format.map(SchemaFormat::KnownFormat))
        .description((!notes.is_empty()).then(|| notes.join(" ")));
    if field.kind == Kind::Text {
        builder = builder
            .min_length(field.min_length)
            .max_length(field.max_length);
    }
    if field.kind == Kind::Int {
        builder = builder.minimum(field.min).maximum(field.max);
    }
    if let Some(choices) = &field.choices {
        let mut values = choices.clone();
        if field.nullable && !values.contains(&Value::Null) {
            values.push(Value::Null);
        }
        builder = builder.enum_values(Some(values));
    }
    builder
}

fn read_only(field: &Field) -> bool {
    field.read_only || field.auto.is_some() || field.name == "id"
}

/// `<Table>`: every field, as the server answers it.
fn output_schema(schema: &Schema) -> ObjectBuilder {
    schema
        .fields
        .iter()
        .fold(ObjectBuilder::new(), |object, field| {
            let mut property = field_schema(field);
            if read_only(field) {
                property = property.read_only(true);
            }
            object.property(field.name, property).required(field.name)
        })
}

/// `<Table>Input` (`full`: create and PUT, fields without a default and not nullable are
/// required) or `Patched<Table>Input` (PATCH: nothing required). The owner field of a scoped
/// viewset is set by the server, so it is not input.
fn input_schema<T: Model>(config: &Config<T>, full: bool) -> ObjectBuilder {
    let scope_field = config.scope.as_ref().map(|s| s.field);
    config
        .table
        .schema
        .fields
        .iter()
        .filter(|f| !read_only(f) && Some(f.name) != scope_field)
        .fold(ObjectBuilder::new(), |object, field| {
            let mut property = field_schema(field).default(field.default.clone());
            if field.kind == Kind::Text && !field.allow_blank && field.min_length.is_none() {
                property = property.min_length(Some(1));
            }
            let object = object.property(field.name, property);
            if full && field.default.is_none() && !field.nullable {
                object.required(field.name)
            } else {
                object
            }
        })
}

/// Filters, `search`, `ordering` and the pagination parameters of the list.
fn list_params(schema: &Schema, pagination: &Pagination) -> Vec<Parameter> {
    let mut params = Vec::new();
    for field in &schema.fields {
        for lookup in Lookup::ALL
            .into_iter()
            .filter(|l| field.lookups.contains(l))
        {
            params.push(lookup_param(field, lookup));
        }
    }
    let search: Vec<&str> = schema
        .fields
        .iter()
        .filter(|f| f.search)
        .map(|f| f.name)
        .collect();
    if !search.is_empty() {
        params.push(query_param(
            "search",
            format!(
                "Terms separated by spaces or commas; every term must appear (case-insensitive) \
                 in one of: {}.",
                code_list(&search)
            ),
            string(),
        ));
    }
    let order: Vec<&str> = schema
        .fields
        .iter()
        .filter(|f| f.order)
        .map(|f| f.name)
        .collect();
    // Cursor pagination keeps its own fixed ordering.
    if !order.is_empty() && !matches!(pagination, Pagination::Cursor(_)) {
        let mut allowed = Vec::new();
        for name in &order {
            allowed.push((*name).to_owned());
            allowed.push(format!("-{name}"));
        }
        let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
        params.push(query_param(
            "ordering",
            format!(
                "Comma-separated fields to order by, `-` for descending. Allowed: {}.",
                code_list(&allowed)
            ),
            string(),
        ));
    }
    params.extend(pagination.openapi_parameters());
    params
}

fn code_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn lookup_param(field: &Field, lookup: Lookup) -> Parameter {
    let name = match lookup {
        Lookup::Exact => field.name.to_owned(),
        other => format!("{}__{}", field.name, other.suffix()),
    };
    let column = field.name;
    let value_schema = || {
        let (ty, format) = json_type(field.kind);
        let mut schema = ObjectBuilder::new().schema_type(ty);
        // Timestamps also accept a date or unix seconds, so no `date-time` format here.
        if field.kind == Kind::Int {
            schema = schema.format(format.map(SchemaFormat::KnownFormat));
        }
        schema
    };
    let time_note = if field.kind == Kind::Timestamp {
        " (RFC 3339, `YYYY-MM-DD` or unix seconds)"
    } else {
        ""
    };
    let (description, schema) = match lookup {
        Lookup::Exact => (format!("`{column}` equals{time_note}."), value_schema()),
        Lookup::Gt => (
            format!("`{column}` greater than{time_note}."),
            value_schema(),
        ),
        Lookup::Gte => (format!("`{column}` at least{time_note}."), value_schema()),
        Lookup::Lt => (format!("`{column}` less than{time_note}."), value_schema()),
        Lookup::Lte => (format!("`{column}` at most{time_note}."), value_schema()),
        Lookup::In => (
            format!("`{column}` is one of these comma-separated values{time_note}."),
            string(),
        ),
        Lookup::IContains => (
            format!("`{column}` contains this text (case-insensitive)."),
            string(),
        ),
        Lookup::IsNull => (
            format!("`{column}` is null (`true`) or not (`false`)."),
            ObjectBuilder::new().schema_type(Type::Boolean),
        ),
    };
    query_param(name, description, schema)
}

#[cfg(test)]
mod tests {
    use super::pascal_case;

    #[test]
    fn table_names_become_component_names() {
        assert_eq!(pascal_case("goods"), "Goods");
        assert_eq!(pascal_case("order_items"), "OrderItems");
    }
}
