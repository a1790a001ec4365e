//! Table schemas and their history. MariaDB's binlog (with its default
//! `binlog_row_metadata=MINIMAL`) describes a row only by column types: no names, no
//! signedness, no enum labels, no primary key. So the connector keeps every captured table's
//! schema itself: read from `information_schema` at the snapshot (under the snapshot's lock,
//! so it matches the snapshot's binlog position), then changed by each DDL statement the
//! binlog carries, in binlog order. The schemas are stored with the connector's offsets, in
//! the same transactions, so after a restart rows are decoded with the schema that was
//! current when they were written, however many DDLs came after.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sqlparser::ast::{
    AlterTableOperation, ColumnDef, ColumnOption, CreateTableLikeKind, Expr, MySQLColumnPosition,
    ObjectName, ObjectType, Statement, TableConstraint,
};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;

/// A column as the connector needs it to decode and name values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// The base type, lowercase: `int`, `varchar`, `decimal`, `datetime`, ...
    pub data_type: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsigned: bool,
    /// Labels of an ENUM or SET, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// The first numeric argument (length, precision, fractional seconds), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
}

impl Column {
    /// A column from its SQL type as `information_schema.COLUMNS.COLUMN_TYPE` or a DDL
    /// statement writes it (`int(10) unsigned`, `ENUM('a','b')`, `DATETIME(3)`, `BOOL`).
    pub fn from_sql_type(name: &str, sql_type: &str) -> Column {
        let lower = sql_type.trim().to_ascii_lowercase();
        let base_end = lower
            .find(|c: char| c == '(' || c.is_whitespace())
            .unwrap_or(lower.len());
        let mut data_type = lower[..base_end].to_string();
        let args = match (sql_type.find('('), sql_type.rfind(')')) {
            (Some(a), Some(b)) if b > a => &sql_type[a + 1..b],
            _ => "",
        };
        let rest = lower.get(base_end..).unwrap_or("");
        let unsigned = rest.contains("unsigned") || rest.contains("zerofill");
        data_type = match data_type.as_str() {
            "bool" | "boolean" => "tinyint".into(),
            "integer" => "int".into(),
            "dec" | "numeric" | "fixed" => "decimal".into(),
            "real" | "double precision" => "double".into(),
            "character" => "char".into(),
            _ => data_type,
        };
        let (labels, size) = if data_type == "enum" || data_type == "set" {
            (parse_labels(args), None)
        } else {
            (
                Vec::new(),
                args.split(',').next().and_then(|a| a.trim().parse().ok()),
            )
        };
        Column {
            name: name.to_string(),
            data_type,
            unsigned,
            labels,
            size,
        }
    }
}

/// `'a','b''c'` -> `["a", "b'c"]`.
fn parse_labels(args: &str) -> Vec<String> {
    let mut labels = Vec::new();
    let mut chars = args.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut label = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(n) = chars.next() {
                        label.push(n);
                    }
                }
                c => label.push(c),
            }
        }
        labels.push(label);
    }
    labels
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub columns: Vec<Column>,
    pub primary_key: Vec<String>,
}

/// Tables by `db.table`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schemas {
    pub tables: BTreeMap<String, Table>,
}

pub fn table_id(db: &str, table: &str) -> String {
    format!("{db}.{table}")
}

/// What a DDL statement did to the schemas: the tables whose schema changed or appeared,
/// and the tables dropped.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub changed: Vec<String>,
    pub dropped: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot follow DDL `{statement}`: {message}")]
pub struct DdlError {
    pub statement: String,
    pub message: String,
}

fn ident_path(name: &ObjectName, default_db: &str) -> String {
    let parts: Vec<&str> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident())
        .map(|i| i.value.as_str())
        .collect();
    match parts.as_slice() {
        [db, t] => table_id(db, t),
        [t] => table_id(default_db, t),
        _ => name.to_string(),
    }
}

fn column_of(def: &ColumnDef) -> Column {
    Column::from_sql_type(&def.name.value, &def.data_type.to_string())
}

fn is_primary(options: &[ColumnOption]) -> bool {
    options.iter().any(|o| {
        matches!(
            o,
            ColumnOption::Unique {
                is_primary: true,
                ..
            }
        )
    })
}

fn key_columns(columns: &[sqlparser::ast::IndexColumn]) -> Vec<String> {
    columns
        .iter()
        .map(|c| match &c.column.expr {
            Expr::Identifier(i) => i.value.clone(),
            e => e.to_string().trim_matches('`').to_string(),
        })
        .collect()
}

fn place(columns: &mut Vec<Column>, col: Column, position: &Option<MySQLColumnPosition>) {
    match position {
        None => columns.push(col),
        Some(MySQLColumnPosition::First) => columns.insert(0, col),
        Some(MySQLColumnPosition::After(after)) => {
            let at = columns
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(&after.value))
                .map_or(columns.len(), |i| i + 1);
            columns.insert(at, col);
        }
    }
}

fn find(columns: &[Column], name: &str) -> Option<usize> {
    columns
        .iter()
        .position(|c| c.name.eq_ignore_ascii_case(name))
}

impl Schemas {
    /// Applies a statement from a binlog query event, run in database `default_db`. Statements
    /// that change no table schema are ignored; one that cannot be parsed or applied to a
    /// known table is an error, since decoding later rows with a wrong schema would be worse.
    pub fn apply_ddl(&mut self, default_db: &str, sql: &str) -> Result<Change, DdlError> {
        let err = |message: String| DdlError {
            statement: sql.chars().take(200).collect(),
            message,
        };
        let statements =
            Parser::parse_sql(&MySqlDialect {}, sql).map_err(|e| err(e.to_string()))?;
        let mut change = Change::default();
        for statement in statements {
            match statement {
                Statement::CreateTable(ct) => {
                    let id = ident_path(&ct.name, default_db);
                    let table = match &ct.like {
                        Some(
                            CreateTableLikeKind::Plain(like)
                            | CreateTableLikeKind::Parenthesized(like),
                        ) => {
                            let src = ident_path(&like.name, default_db);
                            match self.tables.get(&src) {
                                Some(t) => t.clone(),
                                None => continue,
                            }
                        }
                        None => {
                            let columns: Vec<Column> = ct.columns.iter().map(column_of).collect();
                            let mut primary_key: Vec<String> = ct
                                .columns
                                .iter()
                                .filter(|c| {
                                    is_primary(
                                        &c.options
                                            .iter()
                                            .map(|o| o.option.clone())
                                            .collect::<Vec<_>>(),
                                    )
                                })
                                .map(|c| c.name.value.clone())
                                .collect();
                            for constraint in &ct.constraints {
                                if let TableConstraint::PrimaryKey { columns, .. } = constraint {
                                    primary_key = key_columns(columns);
                                }
                            }
                            if columns.is_empty() {
                                // CREATE TABLE ... SELECT: the columns come from the query.
                                return Err(err("a table without a column list".into()));
                            }
                            Table {
                                columns,
                                primary_key,
                            }
                        }
                    };
                    if ct.if_not_exists && self.tables.contains_key(&id) {
                        continue;
                    }
                    self.tables.insert(id.clone(), table);
                    change.changed.push(id);
                }
                Statement::AlterTable {
                    name, operations, ..
                } => {
                    let id = ident_path(&name, default_db);
                    let Some(mut table) = self.tables.get(&id).cloned() else {
                        continue;
                    };
                    let mut new_id = id.clone();
                    for op in operations {
                        apply_alter(&mut table, &mut new_id, default_db, op).map_err(err)?;
                    }
                    if new_id != id {
                        self.tables.remove(&id);
                        change.dropped.push(id);
                    }
                    self.tables.insert(new_id.clone(), table);
                    change.changed.push(new_id);
                }
                Statement::Drop {
                    object_type: ObjectType::Table,
                    names,
                    ..
                } => {
                    for n in names {
                        let id = ident_path(&n, default_db);
                        if self.tables.remove(&id).is_some() {
                            change.dropped.push(id);
                        }
                    }
                }
                Statement::Drop {
                    object_type: ObjectType::Schema | ObjectType::Database,
                    names,
                    ..
                } => {
                    for n in names {
                        let prefix = format!("{}.", n.to_string().trim_matches('`'));
                        let gone: Vec<String> = self
                            .tables
                            .keys()
                            .filter(|k| k.starts_with(&prefix))
                            .cloned()
                            .collect();
                        for id in gone {
                            self.tables.remove(&id);
                            change.dropped.push(id);
                        }
                    }
                }
                Statement::RenameTable(renames) => {
                    for r in renames {
                        let from = ident_path(&r.old_name, default_db);
                        let to = ident_path(&r.new_name, default_db);
                        if let Some(t) = self.tables.remove(&from) {
                            self.tables.insert(to.clone(), t);
                            change.dropped.push(from);
                            change.changed.push(to);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(change)
    }
}

/// `CHANGE` (new name) or `MODIFY` (same name) of a column: a new type, maybe a new place
/// (else the old one), the primary key following a rename.
fn redefine(
    table: &mut Table,
    old: &str,
    new: &str,
    sql_type: &str,
    position: &Option<MySQLColumnPosition>,
) -> Result<(), String> {
    let i = find(&table.columns, old).ok_or_else(|| format!("no column {old}"))?;
    table.columns.remove(i);
    for k in &mut table.primary_key {
        if k.eq_ignore_ascii_case(old) {
            *k = new.to_string();
        }
    }
    let col = Column::from_sql_type(new, sql_type);
    match position {
        None => table.columns.insert(i, col),
        p => place(&mut table.columns, col, p),
    }
    Ok(())
}

fn apply_alter(
    table: &mut Table,
    id: &mut String,
    default_db: &str,
    op: AlterTableOperation,
) -> Result<(), String> {
    match op {
        AlterTableOperation::AddColumn {
            column_def,
            column_position,
            if_not_exists,
            ..
        } => {
            if if_not_exists && find(&table.columns, &column_def.name.value).is_some() {
                return Ok(());
            }
            if is_primary(
                &column_def
                    .options
                    .iter()
                    .map(|o| o.option.clone())
                    .collect::<Vec<_>>(),
            ) {
                table.primary_key = vec![column_def.name.value.clone()];
            }
            place(&mut table.columns, column_of(&column_def), &column_position);
        }
        AlterTableOperation::DropColumn {
            column_names,
            if_exists,
            ..
        } => {
            for c in column_names {
                match find(&table.columns, &c.value) {
                    Some(i) => {
                        table.columns.remove(i);
                        table
                            .primary_key
                            .retain(|k| !k.eq_ignore_ascii_case(&c.value));
                    }
                    None if if_exists => {}
                    None => return Err(format!("no column {}", c.value)),
                }
            }
        }
        AlterTableOperation::ChangeColumn {
            old_name,
            new_name,
            data_type,
            column_position,
            ..
        } => redefine(
            table,
            &old_name.value,
            &new_name.value,
            &data_type.to_string(),
            &column_position,
        )?,
        AlterTableOperation::ModifyColumn {
            col_name,
            data_type,
            column_position,
            ..
        } => redefine(
            table,
            &col_name.value,
            &col_name.value,
            &data_type.to_string(),
            &column_position,
        )?,
        AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => {
            let i = find(&table.columns, &old_column_name.value)
                .ok_or_else(|| format!("no column {}", old_column_name.value))?;
            table.columns[i].name = new_column_name.value.clone();
            for k in &mut table.primary_key {
                if k.eq_ignore_ascii_case(&old_column_name.value) {
                    *k = new_column_name.value.clone();
                }
            }
        }
        AlterTableOperation::AddConstraint {
            constraint: TableConstraint::PrimaryKey { columns, .. },
            ..
        } => {
            table.primary_key = key_columns(&columns);
        }
        AlterTableOperation::DropPrimaryKey { .. } => table.primary_key.clear(),
        AlterTableOperation::RenameTable { table_name } => {
            let name = match table_name {
                sqlparser::ast::RenameTableNameKind::As(n)
                | sqlparser::ast::RenameTableNameKind::To(n) => n,
            };
            *id = ident_path(&name, default_db);
        }
        // Indexes, constraints other than the primary key, options, partitions: no change to
        // what a row looks like.
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(t: &Table) -> Vec<(&str, &str, bool)> {
        t.columns
            .iter()
            .map(|c| (c.name.as_str(), c.data_type.as_str(), c.unsigned))
            .collect()
    }

    #[test]
    fn follows_create_alter_rename_drop() {
        let mut s = Schemas::default();
        let c = s
            .apply_ddl("shop", "CREATE TABLE orders (id INT UNSIGNED NOT NULL AUTO_INCREMENT, note VARCHAR(20), state ENUM('new','it''s done'), PRIMARY KEY (id)) ENGINE=InnoDB")
            .unwrap();
        assert_eq!(c.changed, vec!["shop.orders"]);
        let t = &s.tables["shop.orders"];
        assert_eq!(
            cols(t),
            vec![
                ("id", "int", true),
                ("note", "varchar", false),
                ("state", "enum", false)
            ]
        );
        assert_eq!(t.primary_key, vec!["id"]);
        assert_eq!(t.columns[2].labels, vec!["new", "it's done"]);

        s.apply_ddl("shop", "ALTER TABLE orders ADD COLUMN price DECIMAL(10,2) AFTER id, ADD created DATETIME(3) FIRST, DROP COLUMN note")
            .unwrap();
        let t = &s.tables["shop.orders"];
        assert_eq!(
            cols(t),
            vec![
                ("created", "datetime", false),
                ("id", "int", true),
                ("price", "decimal", false),
                ("state", "enum", false)
            ]
        );
        assert_eq!(t.columns[0].size, Some(3));

        s.apply_ddl(
            "other",
            "ALTER TABLE shop.orders CHANGE COLUMN id order_id BIGINT, MODIFY price DOUBLE",
        )
        .unwrap();
        let t = &s.tables["shop.orders"];
        assert_eq!(t.primary_key, vec!["order_id"]);
        assert_eq!(cols(t)[1], ("order_id", "bigint", false));
        assert_eq!(cols(t)[2], ("price", "double", false));

        let c = s
            .apply_ddl("shop", "RENAME TABLE orders TO orders_old")
            .unwrap();
        assert_eq!(
            c,
            Change {
                changed: vec!["shop.orders_old".into()],
                dropped: vec!["shop.orders".into()]
            }
        );
        s.apply_ddl("shop", "CREATE TABLE orders LIKE orders_old")
            .unwrap();
        assert_eq!(s.tables["shop.orders"], s.tables["shop.orders_old"]);
        let c = s
            .apply_ddl("shop", "DROP TABLE IF EXISTS orders, orders_old")
            .unwrap();
        assert_eq!(c.dropped.len(), 2);
        assert!(s.tables.is_empty());
    }

    #[test]
    fn statements_about_unknown_tables_or_no_schema_are_ignored() {
        let mut s = Schemas::default();
        assert_eq!(
            s.apply_ddl("db", "ALTER TABLE nope ADD COLUMN x INT")
                .unwrap(),
            Change::default()
        );
        assert_eq!(
            s.apply_ddl("db", "GRANT SELECT ON *.* TO 'u'@'%'")
                .map(|c| c.changed.len())
                .unwrap_or(0),
            0
        );
        assert!(s.apply_ddl("db", "this is not sql").is_err());
    }

    #[test]
    fn information_schema_types() {
        let c = Column::from_sql_type("b", "tinyint(1)");
        assert_eq!(
            (c.data_type.as_str(), c.size, c.unsigned),
            ("tinyint", Some(1), false)
        );
        let c = Column::from_sql_type("b", "bigint(20) unsigned zerofill");
        assert!(c.unsigned);
        let c = Column::from_sql_type("s", "set('a','b','c')");
        assert_eq!(c.labels, vec!["a", "b", "c"]);
    }
}
