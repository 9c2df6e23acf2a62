//! The metadata definitions catalog in SQL (tables of migration 7):
//! namespaces, the objects, properties and tags each holds, resource types
//! and their associations with namespaces.
//!
//! One statement per call, as the port allows: a name taken by another row
//! is found by the insert itself (`ON CONFLICT DO NOTHING RETURNING`), so two
//! requests racing for one name get one row and one [`Write::Duplicate`].
//! Who may see what is decided above this layer, except that a list of
//! namespaces is narrowed to the caller's in SQL ([`Scope`]) so paging stays
//! right.

use serde_json::Value;

use crate::db::migrations;
use crate::ports::{Database, SqlValue, StoreError};

/// One namespace row.
#[derive(Debug, Clone, PartialEq)]
pub struct Namespace {
    /// Row id (children refer to it, so a rename keeps them).
    pub id: i64,
    /// The unique name, e.g. `OS::Compute::Watchdog`.
    pub namespace: String,
    /// Name for people.
    pub display_name: Option<String>,
    /// What it is for.
    pub description: Option<String>,
    /// `public` or `private`.
    pub visibility: String,
    /// A protected namespace (and what it holds) cannot be deleted.
    pub protected: bool,
    /// The owning project.
    pub owner: Option<String>,
    /// Creation time (`YYYY-MM-DDTHH:MM:SSZ`).
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// What a namespace holds, by name: each kind has its own table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Objects: a document with `description`, `required`, `properties`.
    Object,
    /// Properties: a document that is the property's JSON schema.
    Property,
    /// Tags: a name only (unique without regard to case).
    Tag,
}

impl Kind {
    fn table(self) -> &'static str {
        match self {
            Kind::Object => "metadef_objects",
            Kind::Property => "metadef_properties",
            Kind::Tag => "metadef_tags",
        }
    }

    fn has_doc(self) -> bool {
        self != Kind::Tag
    }
}

/// An object, property or tag.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Row id.
    pub id: i64,
    /// Its name, unique in its namespace.
    pub name: String,
    /// Its definition (`Value::Null` for a tag).
    pub doc: Value,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// A resource type (`OS::Glance::Image`).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    /// Its name.
    pub name: String,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// A namespace's association with a resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct Association {
    /// The resource type's name.
    pub name: String,
    /// Prefix of the namespace's properties on that resource (`hw_`).
    pub prefix: Option<String>,
    /// Which part of the resource the properties go on (`image`).
    pub properties_target: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// How a write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Written (the row's id).
    Done(i64),
    /// Another row has that name.
    Duplicate,
    /// The row to change is gone.
    Gone,
}

/// Which namespaces a list may return, as Glance's database layer narrows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// An administrator: every namespace.
    All,
    /// Anyone else: public ones, and those of this project (if any).
    Project(Option<String>),
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

impl Dir {
    fn sql(self) -> &'static str {
        match self {
            Dir::Asc => "ASC",
            Dir::Desc => "DESC",
        }
    }

    fn after(self) -> &'static str {
        match self {
            Dir::Asc => ">",
            Dir::Desc => "<",
        }
    }
}

/// The columns a namespace list sorts by.
pub const NAMESPACE_SORT_KEYS: &[&str] = &[
    "created_at",
    "updated_at",
    "namespace",
    "display_name",
    "description",
    "visibility",
    "protected",
    "owner",
    "id",
];

/// The columns a list of objects or tags sorts by.
pub const ITEM_SORT_KEYS: &[&str] = &["created_at", "updated_at", "name", "id"];

/// A page of namespaces.
#[derive(Debug, Clone)]
pub struct NamespaceQuery<'q> {
    /// Whose.
    pub scope: Scope,
    /// Only `public` or `private` ones.
    pub visibility: Option<&'q str>,
    /// Only those associated with one of these resource types.
    pub resource_types: Option<Vec<String>>,
    /// One of [`NAMESPACE_SORT_KEYS`].
    pub sort_key: &'q str,
    /// Direction (ties broken by `created_at`, then `id`, the same way).
    pub sort_dir: Dir,
    /// The page starts after this namespace.
    pub marker: Option<&'q Namespace>,
    /// At most this many.
    pub limit: i64,
}

/// A page of a namespace's objects or tags.
#[derive(Debug, Clone)]
pub struct ItemQuery<'q> {
    /// One of [`ITEM_SORT_KEYS`].
    pub sort_key: &'q str,
    /// Direction (ties broken by `created_at`, then `id`).
    pub sort_dir: Dir,
    /// The page starts after this item.
    pub marker: Option<&'q Item>,
    /// At most this many (None: all).
    pub limit: Option<i64>,
}

impl Default for ItemQuery<'_> {
    fn default() -> Self {
        ItemQuery {
            sort_key: "created_at",
            sort_dir: Dir::Desc,
            marker: None,
            limit: None,
        }
    }
}

const NS_COLUMNS: &str =
    "id, namespace, display_name, description, visibility, protected, owner, created_at, updated_at";

fn text(r: &[SqlValue], i: usize) -> Option<String> {
    r.get(i).and_then(SqlValue::as_str).map(str::to_string)
}

fn corrupt(what: &str) -> StoreError {
    StoreError(format!("corrupt {what} row"))
}

fn namespace_from_row(r: &[SqlValue]) -> Result<Namespace, StoreError> {
    Ok(Namespace {
        id: r
            .first()
            .and_then(SqlValue::as_i64)
            .ok_or_else(|| corrupt("namespace"))?,
        namespace: text(r, 1).ok_or_else(|| corrupt("namespace"))?,
        display_name: text(r, 2),
        description: text(r, 3),
        visibility: text(r, 4).unwrap_or_else(|| "private".into()),
        protected: r.get(5).and_then(SqlValue::as_i64).unwrap_or(0) != 0,
        owner: text(r, 6),
        created_at: text(r, 7).unwrap_or_default(),
        updated_at: text(r, 8).unwrap_or_default(),
    })
}

fn item_from_row(r: &[SqlValue], has_doc: bool) -> Result<Item, StoreError> {
    let doc = if has_doc {
        text(r, 4)
            .and_then(|s| serde_json::from_str(&s).ok())
            .ok_or_else(|| corrupt("metadef"))?
    } else {
        Value::Null
    };
    Ok(Item {
        id: r
            .first()
            .and_then(SqlValue::as_i64)
            .ok_or_else(|| corrupt("metadef"))?,
        name: text(r, 1).ok_or_else(|| corrupt("metadef"))?,
        created_at: text(r, 2).unwrap_or_default(),
        updated_at: text(r, 3).unwrap_or_default(),
        doc,
    })
}

/// The sort expression of `key` (NULL sorts as empty, so a marker's row
/// value compares).
fn sort_expr(key: &str) -> String {
    match key {
        "id" | "protected" => key.to_string(),
        _ => format!("COALESCE({key}, '')"),
    }
}

/// `ORDER BY` and the keyset condition of a page after `marker` (its
/// values for the sort key, created_at and id), for columns named as given.
fn order_and_after(
    key: &str,
    dir: Dir,
    marker: Option<[SqlValue; 3]>,
) -> (String, String, Vec<SqlValue>) {
    let expr = sort_expr(key);
    let d = dir.sql();
    let order = if key == "id" {
        format!(" ORDER BY id {d}")
    } else if key == "created_at" {
        format!(" ORDER BY created_at {d}, id {d}")
    } else {
        format!(" ORDER BY {expr} {d}, created_at {d}, id {d}")
    };
    let Some([k, c, i]) = marker else {
        return (order, String::new(), Vec::new());
    };
    let op = dir.after();
    let (cond, params) = if key == "id" {
        (format!(" AND id {op} ?"), vec![i])
    } else if key == "created_at" {
        (format!(" AND (created_at, id) {op} (?, ?)"), vec![c, i])
    } else {
        (
            format!(" AND ({expr}, created_at, id) {op} (?, ?, ?)"),
            vec![k, c, i],
        )
    };
    (order, cond, params)
}

/// The catalog's rows.
pub struct MetadefRepo<'a> {
    db: &'a dyn Database,
}

impl<'a> MetadefRepo<'a> {
    /// The repository over `db`, its schema brought up to date.
    pub fn open(db: &'a dyn Database) -> Result<Self, StoreError> {
        migrations::ensure(db)?;
        Ok(MetadefRepo { db })
    }

    /// The namespace called `name`, whoever may see it.
    pub fn namespace(&self, name: &str) -> Result<Option<Namespace>, StoreError> {
        let rows = self.db.execute(
            &format!("SELECT {NS_COLUMNS} FROM metadef_namespaces WHERE namespace = ?"),
            &[name.into()],
        )?;
        rows.rows.first().map(|r| namespace_from_row(r)).transpose()
    }

    /// A page of namespaces.
    pub fn namespaces(&self, q: &NamespaceQuery) -> Result<Vec<Namespace>, StoreError> {
        let mut sql = format!("SELECT {NS_COLUMNS} FROM metadef_namespaces WHERE 1 = 1");
        let mut params: Vec<SqlValue> = Vec::new();
        match &q.scope {
            Scope::All => {}
            Scope::Project(Some(p)) => {
                sql.push_str(" AND (visibility = 'public' OR owner = ?)");
                params.push(p.as_str().into());
            }
            Scope::Project(None) => sql.push_str(" AND visibility = 'public'"),
        }
        if let Some(v) = q.visibility {
            sql.push_str(" AND visibility = ?");
            params.push(v.into());
        }
        if let Some(types) = &q.resource_types {
            let marks = vec!["?"; types.len().max(1)].join(", ");
            sql.push_str(&format!(
                " AND id IN (SELECT a.namespace_id FROM metadef_namespace_resource_types a \
                 JOIN metadef_resource_types r ON r.id = a.resource_type_id WHERE r.name IN ({marks}))"
            ));
            if types.is_empty() {
                params.push(SqlValue::Null);
            }
            params.extend(types.iter().map(|t| SqlValue::from(t.as_str())));
        }
        let key = if NAMESPACE_SORT_KEYS.contains(&q.sort_key) {
            q.sort_key
        } else {
            "created_at"
        };
        let marker = q.marker.map(|m| {
            let k: SqlValue = match key {
                "id" => m.id.into(),
                "protected" => m.protected.into(),
                "namespace" => m.namespace.as_str().into(),
                "display_name" => m.display_name.clone().unwrap_or_default().into(),
                "description" => m.description.clone().unwrap_or_default().into(),
                "visibility" => m.visibility.as_str().into(),
                "owner" => m.owner.clone().unwrap_or_default().into(),
                "updated_at" => m.updated_at.as_str().into(),
                _ => m.created_at.as_str().into(),
            };
            [k, m.created_at.as_str().into(), m.id.into()]
        });
        let (order, after, more) = order_and_after(key, q.sort_dir, marker);
        sql.push_str(&after);
        params.extend(more);
        sql.push_str(&order);
        sql.push_str(" LIMIT ?");
        params.push(q.limit.into());
        let rows = self.db.execute(&sql, &params)?;
        rows.rows.iter().map(|r| namespace_from_row(r)).collect()
    }

    /// Inserts `ns` (its `id` is ignored).
    pub fn insert_namespace(&self, ns: &Namespace) -> Result<Write, StoreError> {
        let rows = self.db.execute(
            "INSERT INTO metadef_namespaces (namespace, display_name, description, visibility, \
             protected, owner, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (namespace) DO NOTHING RETURNING id",
            &[
                ns.namespace.as_str().into(),
                ns.display_name.clone().into(),
                ns.description.clone().into(),
                ns.visibility.as_str().into(),
                ns.protected.into(),
                ns.owner.clone().into(),
                ns.created_at.as_str().into(),
                ns.updated_at.as_str().into(),
            ],
        )?;
        Ok(
            match rows
                .rows
                .first()
                .and_then(|r| r.first())
                .and_then(SqlValue::as_i64)
            {
                Some(id) => Write::Done(id),
                None => Write::Duplicate,
            },
        )
    }

    /// Writes every column of `ns` to its row (`ns.id`).
    pub fn update_namespace(&self, ns: &Namespace) -> Result<Write, StoreError> {
        if ns.namespace != self.namespace_name(ns.id)?.unwrap_or_default()
            && self.namespace(&ns.namespace)?.is_some()
        {
            return Ok(Write::Duplicate);
        }
        let rows = self.db.execute(
            "UPDATE OR IGNORE metadef_namespaces SET namespace = ?, display_name = ?, \
             description = ?, visibility = ?, protected = ?, owner = ?, updated_at = ? \
             WHERE id = ? RETURNING id",
            &[
                ns.namespace.as_str().into(),
                ns.display_name.clone().into(),
                ns.description.clone().into(),
                ns.visibility.as_str().into(),
                ns.protected.into(),
                ns.owner.clone().into(),
                ns.updated_at.as_str().into(),
                ns.id.into(),
            ],
        )?;
        if rows.rows.is_empty() {
            // Gone, or renamed onto a name taken since the check above.
            return Ok(if self.namespace_name(ns.id)?.is_some() {
                Write::Duplicate
            } else {
                Write::Gone
            });
        }
        Ok(Write::Done(ns.id))
    }

    fn namespace_name(&self, id: i64) -> Result<Option<String>, StoreError> {
        let rows = self.db.execute(
            "SELECT namespace FROM metadef_namespaces WHERE id = ?",
            &[id.into()],
        )?;
        Ok(rows.rows.first().and_then(|r| text(r, 0)))
    }

    /// Deletes namespace `id` and everything it holds.
    pub fn delete_namespace(&self, id: i64) -> Result<(), StoreError> {
        for kind in [Kind::Object, Kind::Property, Kind::Tag] {
            self.delete_items(kind, id)?;
        }
        self.db.execute(
            "DELETE FROM metadef_namespace_resource_types WHERE namespace_id = ?",
            &[id.into()],
        )?;
        self.db
            .execute("DELETE FROM metadef_namespaces WHERE id = ?", &[id.into()])?;
        Ok(())
    }

    /// The `kind` items of namespace `ns`, a page of them.
    pub fn items(&self, kind: Kind, ns: i64, q: &ItemQuery) -> Result<Vec<Item>, StoreError> {
        let key = if ITEM_SORT_KEYS.contains(&q.sort_key) {
            q.sort_key
        } else {
            "created_at"
        };
        let marker = q.marker.map(|m| {
            let k: SqlValue = match key {
                "id" => m.id.into(),
                "name" => m.name.as_str().into(),
                "updated_at" => m.updated_at.as_str().into(),
                _ => m.created_at.as_str().into(),
            };
            [k, m.created_at.as_str().into(), m.id.into()]
        });
        let (order, after, more) = order_and_after(key, q.sort_dir, marker);
        let mut params: Vec<SqlValue> = vec![ns.into()];
        params.extend(more);
        let mut sql = format!(
            "SELECT {} FROM {} WHERE namespace_id = ?{after}{order}",
            self.item_columns(kind),
            kind.table()
        );
        if let Some(limit) = q.limit {
            sql.push_str(" LIMIT ?");
            params.push(limit.into());
        }
        let rows = self.db.execute(&sql, &params)?;
        rows.rows
            .iter()
            .map(|r| item_from_row(r, kind.has_doc()))
            .collect()
    }

    fn item_columns(&self, kind: Kind) -> &'static str {
        if kind.has_doc() {
            "id, name, created_at, updated_at, json_schema"
        } else {
            "id, name, created_at, updated_at"
        }
    }

    /// The `kind` item `name` of namespace `ns` (tags: in any case).
    pub fn item(&self, kind: Kind, ns: i64, name: &str) -> Result<Option<Item>, StoreError> {
        let rows = self.db.execute(
            &format!(
                "SELECT {} FROM {} WHERE namespace_id = ? AND name = ?",
                self.item_columns(kind),
                kind.table()
            ),
            &[ns.into(), name.into()],
        )?;
        rows.rows
            .first()
            .map(|r| item_from_row(r, kind.has_doc()))
            .transpose()
    }

    /// Adds a `kind` item to namespace `ns`, created at `now`.
    pub fn insert_item(
        &self,
        kind: Kind,
        ns: i64,
        name: &str,
        doc: &Value,
        now: &str,
    ) -> Result<Write, StoreError> {
        let rows = if kind.has_doc() {
            self.db.execute(
                &format!(
                    "INSERT INTO {} (namespace_id, name, json_schema, created_at, updated_at) \
                     VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
                    kind.table()
                ),
                &[
                    ns.into(),
                    name.into(),
                    doc.to_string().into(),
                    now.into(),
                    now.into(),
                ],
            )?
        } else {
            self.db.execute(
                "INSERT INTO metadef_tags (namespace_id, name, created_at, updated_at) \
                 VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
                &[ns.into(), name.into(), now.into(), now.into()],
            )?
        };
        Ok(
            match rows
                .rows
                .first()
                .and_then(|r| r.first())
                .and_then(SqlValue::as_i64)
            {
                Some(id) => Write::Done(id),
                None => Write::Duplicate,
            },
        )
    }

    /// Renames item `id` and replaces its document.
    pub fn update_item(
        &self,
        kind: Kind,
        id: i64,
        name: &str,
        doc: &Value,
        now: &str,
    ) -> Result<Write, StoreError> {
        let rows = if kind.has_doc() {
            self.db.execute(
                &format!(
                    "UPDATE OR IGNORE {} SET name = ?, json_schema = ?, updated_at = ? \
                     WHERE id = ? RETURNING id",
                    kind.table()
                ),
                &[name.into(), doc.to_string().into(), now.into(), id.into()],
            )?
        } else {
            self.db.execute(
                "UPDATE OR IGNORE metadef_tags SET name = ?, updated_at = ? WHERE id = ? RETURNING id",
                &[name.into(), now.into(), id.into()],
            )?
        };
        if !rows.rows.is_empty() {
            return Ok(Write::Done(id));
        }
        let exists = self.db.execute(
            &format!("SELECT 1 FROM {} WHERE id = ?", kind.table()),
            &[id.into()],
        )?;
        Ok(if exists.rows.is_empty() {
            Write::Gone
        } else {
            Write::Duplicate
        })
    }

    /// Deletes the `kind` item `name` of namespace `ns`; false if it had none.
    pub fn delete_item(&self, kind: Kind, ns: i64, name: &str) -> Result<bool, StoreError> {
        let rows = self.db.execute(
            &format!(
                "DELETE FROM {} WHERE namespace_id = ? AND name = ? RETURNING id",
                kind.table()
            ),
            &[ns.into(), name.into()],
        )?;
        Ok(!rows.rows.is_empty())
    }

    /// Deletes every `kind` item of namespace `ns`.
    pub fn delete_items(&self, kind: Kind, ns: i64) -> Result<(), StoreError> {
        self.db.execute(
            &format!("DELETE FROM {} WHERE namespace_id = ?", kind.table()),
            &[ns.into()],
        )?;
        Ok(())
    }

    /// Every resource type, oldest first.
    pub fn resource_types(&self) -> Result<Vec<ResourceType>, StoreError> {
        let rows = self.db.execute(
            "SELECT name, created_at, updated_at FROM metadef_resource_types ORDER BY id",
            &[],
        )?;
        Ok(rows
            .rows
            .iter()
            .map(|r| ResourceType {
                name: text(r, 0).unwrap_or_default(),
                created_at: text(r, 1).unwrap_or_default(),
                updated_at: text(r, 2).unwrap_or_default(),
            })
            .collect())
    }

    /// The resource types namespace `ns` is associated with, oldest first.
    pub fn associations(&self, ns: i64) -> Result<Vec<Association>, StoreError> {
        let rows = self.db.execute(
            "SELECT r.name, a.prefix, a.properties_target, a.created_at, a.updated_at \
             FROM metadef_namespace_resource_types a \
             JOIN metadef_resource_types r ON r.id = a.resource_type_id \
             WHERE a.namespace_id = ? ORDER BY a.created_at, r.id",
            &[ns.into()],
        )?;
        Ok(rows
            .rows
            .iter()
            .map(|r| Association {
                name: text(r, 0).unwrap_or_default(),
                prefix: text(r, 1),
                properties_target: text(r, 2),
                created_at: text(r, 3).unwrap_or_default(),
                updated_at: text(r, 4).unwrap_or_default(),
            })
            .collect())
    }

    /// Associates namespace `ns` with resource type `a.name`, which is
    /// created if it does not exist yet (as Glance does).
    pub fn associate(&self, ns: i64, a: &Association) -> Result<Write, StoreError> {
        self.db.execute(
            "INSERT INTO metadef_resource_types (name, protected, created_at, updated_at) \
             VALUES (?, 0, ?, ?) ON CONFLICT (name) DO NOTHING",
            &[
                a.name.as_str().into(),
                a.created_at.as_str().into(),
                a.updated_at.as_str().into(),
            ],
        )?;
        let rows = self.db.execute(
            "INSERT INTO metadef_namespace_resource_types (resource_type_id, namespace_id, \
             properties_target, prefix, created_at, updated_at) \
             SELECT id, ?, ?, ?, ?, ? FROM metadef_resource_types WHERE name = ? \
             ON CONFLICT DO NOTHING RETURNING namespace_id",
            &[
                ns.into(),
                a.properties_target.clone().into(),
                a.prefix.clone().into(),
                a.created_at.as_str().into(),
                a.updated_at.as_str().into(),
                a.name.as_str().into(),
            ],
        )?;
        Ok(if rows.rows.is_empty() {
            Write::Duplicate
        } else {
            Write::Done(ns)
        })
    }

    /// Whether resource type `name` exists.
    pub fn resource_type_exists(&self, name: &str) -> Result<bool, StoreError> {
        let rows = self.db.execute(
            "SELECT 1 FROM metadef_resource_types WHERE name = ?",
            &[name.into()],
        )?;
        Ok(!rows.rows.is_empty())
    }

    /// Removes namespace `ns`'s association with resource type `name`;
    /// false if there was none.
    pub fn dissociate(&self, ns: i64, name: &str) -> Result<bool, StoreError> {
        let rows = self.db.execute(
            "DELETE FROM metadef_namespace_resource_types WHERE namespace_id = ? AND \
             resource_type_id = (SELECT id FROM metadef_resource_types WHERE name = ?) \
             RETURNING namespace_id",
            &[ns.into(), name.into()],
        )?;
        Ok(!rows.rows.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::memory::MemoryDb;
    use serde_json::json;

    fn ns(name: &str, vis: &str, owner: Option<&str>, at: &str) -> Namespace {
        Namespace {
            id: 0,
            namespace: name.into(),
            display_name: None,
            description: None,
            visibility: vis.into(),
            protected: false,
            owner: owner.map(str::to_string),
            created_at: at.into(),
            updated_at: at.into(),
        }
    }

    fn query(scope: Scope) -> NamespaceQuery<'static> {
        NamespaceQuery {
            scope,
            visibility: None,
            resource_types: None,
            sort_key: "created_at",
            sort_dir: Dir::Desc,
            marker: None,
            limit: 100,
        }
    }

    fn names(list: &[Namespace]) -> Vec<&str> {
        list.iter().map(|n| n.namespace.as_str()).collect()
    }

    #[test]
    fn namespaces_are_unique_scoped_and_paged() {
        let db = MemoryDb::new();
        let repo = MetadefRepo::open(&db).unwrap();
        let a = ns("a", "public", Some("p1"), "2024-01-01T00:00:01Z");
        let b = ns("b", "private", Some("p1"), "2024-01-01T00:00:02Z");
        let c = ns("c", "private", Some("p2"), "2024-01-01T00:00:02Z");
        for n in [&a, &b, &c] {
            assert!(matches!(repo.insert_namespace(n).unwrap(), Write::Done(_)));
        }
        assert_eq!(repo.insert_namespace(&a).unwrap(), Write::Duplicate);
        assert_eq!(
            names(&repo.namespaces(&query(Scope::All)).unwrap()),
            ["c", "b", "a"]
        );
        let p1 = query(Scope::Project(Some("p1".into())));
        assert_eq!(names(&repo.namespaces(&p1).unwrap()), ["b", "a"]);
        assert_eq!(
            names(&repo.namespaces(&query(Scope::Project(None))).unwrap()),
            ["a"]
        );
        // Keyset paging by name, ascending.
        let first = repo
            .namespaces(&NamespaceQuery {
                sort_key: "namespace",
                sort_dir: Dir::Asc,
                limit: 2,
                ..query(Scope::All)
            })
            .unwrap();
        assert_eq!(names(&first), ["a", "b"]);
        let rest = repo
            .namespaces(&NamespaceQuery {
                sort_key: "namespace",
                sort_dir: Dir::Asc,
                marker: Some(&first[1]),
                limit: 2,
                ..query(Scope::All)
            })
            .unwrap();
        assert_eq!(names(&rest), ["c"]);
    }

    #[test]
    fn items_tags_associations_and_cascade() {
        let db = MemoryDb::new();
        let repo = MetadefRepo::open(&db).unwrap();
        let Write::Done(id) = repo
            .insert_namespace(&ns("n", "public", None, "2024-01-01T00:00:00Z"))
            .unwrap()
        else {
            panic!("insert");
        };
        let now = "2024-01-01T00:00:00Z";
        let doc = json!({"type": "string", "title": "T"});
        assert!(matches!(
            repo.insert_item(Kind::Property, id, "p", &doc, now)
                .unwrap(),
            Write::Done(_)
        ));
        assert_eq!(
            repo.insert_item(Kind::Property, id, "p", &doc, now)
                .unwrap(),
            Write::Duplicate
        );
        assert!(matches!(
            repo.insert_item(Kind::Tag, id, "Tag", &Value::Null, now)
                .unwrap(),
            Write::Done(_)
        ));
        assert_eq!(
            repo.insert_item(Kind::Tag, id, "TAG", &Value::Null, now)
                .unwrap(),
            Write::Duplicate,
            "tags are unique without regard to case"
        );
        let p = repo.item(Kind::Property, id, "p").unwrap().unwrap();
        assert_eq!(p.doc, doc);
        let t = repo.item(Kind::Tag, id, "tag").unwrap().unwrap();
        assert_eq!(
            repo.update_item(Kind::Tag, t.id, "other", &Value::Null, now)
                .unwrap(),
            Write::Done(t.id)
        );
        let assoc = Association {
            name: "OS::Glance::Image".into(),
            prefix: Some("hw_".into()),
            properties_target: None,
            created_at: now.into(),
            updated_at: now.into(),
        };
        assert_eq!(repo.associate(id, &assoc).unwrap(), Write::Done(id));
        assert_eq!(repo.associate(id, &assoc).unwrap(), Write::Duplicate);
        assert_eq!(repo.associations(id).unwrap(), vec![assoc.clone()]);
        let filtered = repo
            .namespaces(&NamespaceQuery {
                resource_types: Some(vec!["OS::Glance::Image".into()]),
                ..query(Scope::All)
            })
            .unwrap();
        assert_eq!(names(&filtered), ["n"]);
        let none = repo
            .namespaces(&NamespaceQuery {
                resource_types: Some(vec!["OS::Nova::Flavor".into()]),
                ..query(Scope::All)
            })
            .unwrap();
        assert!(none.is_empty());
        repo.delete_namespace(id).unwrap();
        assert!(repo.namespace("n").unwrap().is_none());
        for table in [
            "metadef_properties",
            "metadef_tags",
            "metadef_namespace_resource_types",
        ] {
            let rows = db
                .execute(&format!("SELECT count(*) FROM {table}"), &[])
                .unwrap();
            assert_eq!(rows.rows[0][0].as_i64(), Some(0), "{table}");
        }
        // The resource type stays, as in Glance.
        assert_eq!(repo.resource_types().unwrap().len(), 1);
    }
}
